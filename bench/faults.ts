/**
 * Faults: Sluice at its default settings on an engine that misbehaves now and then — 5% of
 * answers 500, 5% 429, 3% connection resets, 2% hung calls that never answer — against the
 * engine's capacity: the best plain fixed-concurrency client on the same engine without faults.
 * Beside it, the plain client on the faulty engine with a 30-second timeout (what a careful hand
 * pipeline does; its default is openai-node's 10 minutes).
 *
 * Throughput is the simulator's (requests served / makespan, first arrival → last completion), so
 * a hung call's cost shows wherever it falls, the tail included. Target: Sluice ≥ 0.85.
 *
 * Usage: node --import tsx bench/faults.ts [--size quick|full]
 */
import { join } from "node:path";
import type { SimOptions, SimStats } from "../src/sim/index.js";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { runPlainClient } from "./lib/plain-client.js";
import { type SimProcess, startSimProcess } from "./lib/processes.js";
import { printTable, type Row, writeResult } from "./lib/report.js";
import { runEmbedded } from "./lib/sluice-embedded.js";

const preset = pickSize({
  quick: { requests: 3000, slots: 32 },
  full: { requests: 12_000, slots: 32 },
});
const N = preset.slots;
const SIM: SimOptions = { slots: N, stepMs: 10, prefillMsPerToken: 0.1, minOut: 10, maxOut: 40, seed: 7 };
const FAULTS = { error500: 0.05, error429: 0.05, reset: 0.03, hang: 0.02 };

interface Measured {
  client: string;
  engine: "clean" | "faulty";
  served: number;
  failed: number;
  stats: SimStats;
  wallMs: number;
}

const throughput = (m: Measured) => (m.stats.makespanMs > 0 ? m.stats.requestsServed / (m.stats.makespanMs / 1000) : 0);

async function plain(
  sim: SimProcess,
  dir: string,
  input: string,
  c: number,
  engine: Measured["engine"],
  timeoutMs?: number,
) {
  await sim.reset();
  const r = await runPlainClient({
    inputPath: input,
    outputPath: join(dir, `out-plain-${engine}-${c}.jsonl`),
    baseUrl: `${sim.url}/v1`,
    concurrency: c,
    maxAttempts: 50,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
  return {
    client: `plain c=${c}${timeoutMs === undefined ? "" : ` timeout ${timeoutMs / 1000} s`}`,
    engine,
    served: r.requests - r.failed,
    failed: r.failed,
    stats: await sim.stats(),
    wallMs: r.elapsedMs,
  };
}

await withScratch("faults", async (dir) => {
  const input = join(dir, "input.jsonl");
  await generateInput({ path: input, count: preset.requests, userChars: 200, seed: 3 });
  const results: Measured[] = [];

  const clean = await startSimProcess(SIM);
  try {
    for (const c of [N, 2 * N]) results.push(await plain(clean, dir, input, c, "clean"));
  } finally {
    await clean.stop();
  }

  const faulty = await startSimProcess({ ...SIM, faults: FAULTS });
  try {
    await faulty.reset();
    const r = await runEmbedded({
      inputPath: input,
      outputPath: join(dir, "out-sluice.jsonl"),
      backend: `${faulty.url}/v1`,
      workDir: join(dir, "work"),
    });
    results.push({
      client: "sluice (default)",
      engine: "faulty",
      served: r.completed,
      failed: r.failed,
      stats: await faulty.stats(),
      wallMs: r.total.ms,
    });
    results.push(await plain(faulty, dir, input, 2 * N, "faulty", 30_000));
  } finally {
    await faulty.stop();
  }

  const capacity = Math.max(...results.filter((m) => m.engine === "clean").map(throughput));
  const rows: Row[] = results.map((m) => ({
    client: m.client,
    engine: m.engine,
    served: m.served,
    failed: m.failed,
    "req/s": round(throughput(m), 1),
    "vs capacity": round(throughput(m) / capacity),
    "faults injected": Object.values(m.stats.faults).reduce((a, b) => a + b, 0),
    "makespan s": round(m.stats.makespanMs / 1000, 2),
    "wall s": round(m.wallMs / 1000, 2),
  }));
  printTable(
    `faults — ${preset.requests} requests, simulator ${N} slots, step ${SIM.stepMs} ms; faulty engine: 5% 500, 5% 429, 3% resets, 2% hangs; capacity = best plain client on the clean engine`,
    rows,
  );
  const path = await writeResult("faults", {
    size: preset.size,
    requests: preset.requests,
    simulator: SIM,
    faults: FAULTS,
    rows,
  });
  process.stdout.write(`→ ${path}\n`);
});
