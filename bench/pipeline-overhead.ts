/**
 * Pipeline overhead: against the zero-cost simulator (answers in the same tick, unlimited slots)
 * the only cost left is the client's own. Sluice's whole embedded pipeline (SQLite store: ingest,
 * claim → call → checkpoint, finalize, output) against a bare undici keep-alive loop at its best
 * concurrency, same requests, same simulator process, in one run. Target: Sluice's dispatch phase
 * at ≥ 0.6 of the bare loop's requests/s.
 *
 * CPU is this process's (the simulator runs in a child). To see where Sluice's time goes:
 *   node --cpu-prof --cpu-prof-dir=bench/results/prof --import tsx bench/pipeline-overhead.ts --sluice-only
 *   node --import tsx bench/lib/cpu-profile-summary.ts bench/results/prof/<file>.cpuprofile
 *
 * Usage: node --import tsx bench/pipeline-overhead.ts [--size quick|full] [--sluice-only]
 */
import { join } from "node:path";
import { type BareLoopResult, loadRequests, runBareLoop } from "./lib/bare-loop.js";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { startSimProcess } from "./lib/processes.js";
import { printTable, type Row, writeResult } from "./lib/report.js";
import { runEmbedded } from "./lib/sluice-embedded.js";

const preset = pickSize({
  quick: { requests: 5_000, concurrencies: [16, 64, 256] },
  full: { requests: 50_000, concurrencies: [8, 16, 32, 64, 128, 256, 512] },
});
const sluiceOnly = process.argv.includes("--sluice-only");

interface BareRun {
  concurrency: number;
  result: BareLoopResult;
}

/** The fastest bare run, if any. */
const best = (runs: readonly BareRun[]): BareRun | undefined =>
  runs.reduce<BareRun | undefined>(
    (a, b) => (a === undefined || b.result.elapsedMs < a.result.elapsedMs ? b : a),
    undefined,
  );

await withScratch("pipeline", async (dir) => {
  const inputPath = join(dir, "input.jsonl");
  await generateInput({ path: inputPath, count: preset.requests, userChars: 200, maxTokens: 16, seed: 5 });
  const sim = await startSimProcess({ zeroCost: true });
  try {
    const bare: BareRun[] = [];
    if (!sluiceOnly) {
      const requests = await loadRequests(inputPath);
      // Warm-up: JIT and connections, not measured.
      await runBareLoop(sim.url, requests.slice(0, 2000), 64);
      for (const c of preset.concurrencies)
        bare.push({ concurrency: c, result: await runBareLoop(sim.url, requests, c) });
    }
    await sim.reset();
    const s = await runEmbedded({
      inputPath,
      outputPath: join(dir, "output.jsonl"),
      backend: `${sim.url}/v1`,
      workDir: join(dir, "work"),
    });
    const stats = await sim.stats();
    if (s.completed !== preset.requests) throw new Error(`sluice completed ${s.completed} of ${preset.requests}`);
    // Diagnostic: the same pipeline with the flow limit pinned (as if told the best concurrency),
    // separating the pipeline's own cost from the adaptive limit's choice.
    const pinnedAt = best(bare)?.concurrency ?? 64;
    const pinned = await runEmbedded({
      inputPath,
      outputPath: join(dir, "output-pinned.jsonl"),
      backend: `${sim.url}/v1`,
      workDir: join(dir, "work-pinned"),
      flow: { initialLimit: pinnedAt, minLimit: pinnedAt, maxLimit: pinnedAt },
    });

    const rate = (n: number, ms: number) => n / (ms / 1000);
    const top = best(bare);
    const bestRate = top === undefined ? Number.NaN : rate(top.result.requests, top.result.elapsedMs);
    const n = preset.requests;
    const rows: Row[] = [
      ...bare.map(({ concurrency, result }) => ({
        client: `bare undici c=${concurrency}`,
        phase: "calls",
        "req/s": round(rate(result.requests, result.elapsedMs), 0),
        "vs best bare": round(rate(result.requests, result.elapsedMs) / bestRate),
        "cpu µs/req": Math.round(result.cpuMicros / result.requests),
        "wall s": round(result.elapsedMs / 1000, 2),
      })),
      ...(
        [
          ["dispatch (claim→call→checkpoint)", s.dispatch],
          ["ingest (store, validate, insert)", s.ingest],
          ["finalize + output file", s.finalize],
          ["whole pipeline", s.total],
        ] as const
      ).map(([phase, p]) => ({
        client: "sluice embedded",
        phase,
        "req/s": round(rate(n, p.ms), 0),
        "vs best bare": round(rate(n, p.ms) / bestRate),
        "cpu µs/req": Math.round(p.cpuMicros / n),
        "wall s": round(p.ms / 1000, 2),
      })),
      {
        client: `sluice, limit pinned at ${pinnedAt}`,
        phase: "dispatch (diagnostic)",
        "req/s": round(rate(n, pinned.dispatch.ms), 0),
        "vs best bare": round(rate(n, pinned.dispatch.ms) / bestRate),
        "cpu µs/req": Math.round(pinned.dispatch.cpuMicros / n),
        "wall s": round(pinned.dispatch.ms / 1000, 2),
      },
    ];
    printTable(`pipeline overhead — ${n} requests against the zero-cost simulator (separate process)`, rows);
    const peak = s.limits.reduce((m, [, l]) => Math.max(m, l), 0);
    process.stdout.write(
      `sluice flow limit peaked at ${peak}; simulator makespan for sluice ${round(stats.makespanMs / 1000, 2)} s, served ${stats.requestsServed}\n`,
    );
    const path = await writeResult(sluiceOnly ? "pipeline-overhead-sluice-only" : "pipeline-overhead", {
      size: preset.size,
      requests: n,
      bestBareConcurrency: top?.concurrency ?? null,
      sluiceDispatchVsBestBare: round(rate(n, s.dispatch.ms) / bestRate),
      sluiceWholeVsBestBare: round(rate(n, s.total.ms) / bestRate),
      pinnedDispatchVsBestBare: round(rate(n, pinned.dispatch.ms) / bestRate),
      rows,
      sluice: s,
      sluicePinned: pinned,
      simulator: { makespanMs: stats.makespanMs, served: stats.requestsServed },
    });
    process.stdout.write(`→ ${path}\n`);
  } finally {
    await sim.stop();
  }
});
