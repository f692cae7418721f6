/**
 * Efficiency: Sluice at its DEFAULT settings (it is not told the engine's slot count) against the
 * simulator's provable lower bound, and against the plain fixed-concurrency client at N/2, N, 2N
 * and 4N for an N-slot engine; same input, same simulator process (stats reset between runs).
 * A second simulator with a small waiting queue (`maxQueue`) shows who causes a 429 storm. A
 * third has a step time that grows as the batch fills (`stepGrowth`: ×2 at a full batch), as real
 * engines do: per-token latency then rises before saturation too, which an adaptive limit could
 * read as queueing and stop short of N.
 *
 * Throughput is measured by the simulator (requests served / its makespan, first arrival → last
 * completion), so process start-up, ingest and output writing do not count for either client;
 * wall-clock totals are shown beside it.
 *
 * Usage: node --import tsx bench/efficiency.ts [--size quick|full]
 */
import { join } from "node:path";
import type { SimOptions, SimStats } from "../src/sim/index.js";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { runPlainClient } from "./lib/plain-client.js";
import { type GaugeSummary, type SimProcess, sampleGauges, startSimProcess } from "./lib/processes.js";
import { printTable, type Row, writeResult } from "./lib/report.js";
import { runEmbedded } from "./lib/sluice-embedded.js";

const preset = pickSize({
  quick: { requests: 800, slots: 32, maxQueue: 4, halfN: false },
  full: { requests: 8000, slots: 32, maxQueue: 4, halfN: true },
});
const N = preset.slots;
const SIM: SimOptions = { slots: N, stepMs: 10, prefillMsPerToken: 0.1, minOut: 10, maxOut: 40, seed: 7 };
const STEP_GROWTH = 1;

interface Measured {
  client: string;
  served: number;
  failed: number;
  stats: SimStats;
  gauges: GaugeSummary;
  wallMs: number;
  cpuMicros: number;
  limits?: [number, number][];
}

async function measureSluice(sim: SimProcess, dir: string, inputPath: string, tag: string): Promise<Measured> {
  await sim.reset();
  const sampling = sampleGauges(sim);
  const r = await runEmbedded({
    inputPath,
    outputPath: join(dir, `out-sluice-${tag}.jsonl`),
    backend: `${sim.url}/v1`,
    workDir: join(dir, `work-${tag}`),
  });
  const gauges = await sampling(r.completed);
  const stats = await sim.stats();
  return {
    client: "sluice (default)",
    served: r.completed,
    failed: r.failed,
    stats,
    gauges,
    wallMs: r.total.ms,
    cpuMicros: r.total.cpuMicros,
    limits: r.limits,
  };
}

async function measurePlain(sim: SimProcess, dir: string, inputPath: string, concurrency: number): Promise<Measured> {
  await sim.reset();
  const sampling = sampleGauges(sim);
  const r = await runPlainClient({
    inputPath,
    outputPath: join(dir, `out-plain-${concurrency}.jsonl`),
    baseUrl: `${sim.url}/v1`,
    concurrency,
    maxAttempts: 50,
  });
  const gauges = await sampling(r.requests - r.failed);
  const stats = await sim.stats();
  return {
    client: `plain c=${concurrency}`,
    served: r.requests - r.failed,
    failed: r.failed,
    stats,
    gauges,
    wallMs: r.elapsedMs,
    cpuMicros: r.cpuMicros,
  };
}

const throughput = (m: Measured) => (m.stats.makespanMs > 0 ? m.stats.requestsServed / (m.stats.makespanMs / 1000) : 0);

function rows(ms: Measured[]): Row[] {
  const plain = ms.filter((m) => m.client.startsWith("plain"));
  const bestPlain = Math.max(...plain.map(throughput));
  const bestSteady = Math.max(...plain.map((m) => m.gauges.steadyRate).filter((r) => Number.isFinite(r)));
  return ms.map((m) => ({
    client: m.client,
    served: m.served,
    failed: m.failed,
    "req/s": round(throughput(m), 1),
    "vs best plain": round(throughput(m) / bestPlain),
    "steady vs best": round(m.gauges.steadyRate / bestSteady),
    efficiency: round(m.stats.efficiency),
    utilization: round(m.stats.utilization),
    "mean queue": round(m.gauges.meanQueued, 1),
    "max queue": m.stats.maxQueueDepth,
    "429s": m.stats.queueFull429,
    "wall s": round(m.wallMs / 1000, 2),
    "cpu µs/req": Math.round(m.cpuMicros / Math.max(1, m.served)),
  }));
}

await withScratch("efficiency", async (dir) => {
  const inputPath = join(dir, "input.jsonl");
  await generateInput({ path: inputPath, count: preset.requests, userChars: 200, seed: 3 });

  const open = await startSimProcess(SIM);
  const unbounded: Measured[] = [];
  try {
    unbounded.push(await measureSluice(open, dir, inputPath, "open"));
    for (const c of preset.halfN ? [N / 2, N, 2 * N, 4 * N] : [N, 2 * N, 4 * N])
      unbounded.push(await measurePlain(open, dir, inputPath, c));
  } finally {
    await open.stop();
  }

  const bounded = await startSimProcess({ ...SIM, maxQueue: preset.maxQueue });
  const limited: Measured[] = [];
  try {
    limited.push(await measureSluice(bounded, dir, inputPath, "bounded"));
    for (const c of [N, 4 * N]) limited.push(await measurePlain(bounded, dir, inputPath, c));
  } finally {
    await bounded.stop();
  }

  const growing = await startSimProcess({ ...SIM, stepGrowth: STEP_GROWTH });
  const grown: Measured[] = [];
  try {
    grown.push(await measureSluice(growing, dir, inputPath, "growing"));
    for (const c of [N, 2 * N, 4 * N]) grown.push(await measurePlain(growing, dir, inputPath, c));
  } finally {
    await growing.stop();
  }

  const title = `efficiency — ${preset.requests} requests, simulator ${N} slots, step ${SIM.stepMs} ms, ${SIM.minOut}–${SIM.maxOut} output tokens`;
  const openRows = rows(unbounded);
  const limitedRows = rows(limited);
  printTable(`${title}, unbounded queue`, openRows);
  printTable(`${title}, maxQueue ${preset.maxQueue} (429 beyond it)`, limitedRows);
  const grownRows = rows(grown);
  printTable(`${title}, step time ×${1 + STEP_GROWTH} at a full batch (stepGrowth ${STEP_GROWTH})`, grownRows);
  const grownTrace = grown[0]?.limits ?? [];
  const limitTrace = unbounded[0]?.limits ?? [];
  const boundedTrace = limited[0]?.limits ?? [];
  const trace = (t: [number, number][]) => t.map(([ms, l]) => `${ms}→${l}`).join(" ");
  process.stdout.write(`sluice flow limit, unbounded (ms since dispatch began→limit): ${trace(limitTrace)}\n`);
  process.stdout.write(`sluice flow limit, maxQueue ${preset.maxQueue}: ${trace(boundedTrace)}\n`);
  process.stdout.write(`sluice flow limit, stepGrowth ${STEP_GROWTH}: ${trace(grownTrace)}\n`);
  const path = await writeResult("efficiency", {
    size: preset.size,
    requests: preset.requests,
    simulator: SIM,
    maxQueue: preset.maxQueue,
    unbounded: openRows,
    bounded: limitedRows,
    stepGrowth: STEP_GROWTH,
    growingStep: grownRows,
    sluiceLimitTrace: limitTrace,
    boundedSluiceLimitTrace: boundedTrace,
    growingStepSluiceLimitTrace: grownTrace,
    rawStats: {
      unbounded: unbounded.map((m) => ({ client: m.client, stats: m.stats })),
      bounded: limited.map((m) => ({ client: m.client, stats: m.stats })),
      growingStep: grown.map((m) => ({ client: m.client, stats: m.stats })),
    },
  });
  process.stdout.write(`→ ${path}\n`);
});
