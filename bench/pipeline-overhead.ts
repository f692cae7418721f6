/**
 * Pipeline overhead: against the zero-cost simulator (answers in the same tick, unlimited slots)
 * the only cost left is the client's own. Sluice's whole embedded pipeline (SQLite store: ingest,
 * claim → call → checkpoint, finalize, output) against a bare undici keep-alive loop at its best
 * concurrency, same requests, same simulator process, in one run. Target (engine issue): claim →
 * call → checkpoint → finalize (the dispatch and finalize phases; not ingest, since the bare loop
 * holds its bodies in memory) at ≥ 0.6 of the bare loop's requests/s. The dispatch phase alone is
 * shown too: it is where the per-call cost lives.
 *
 * Each variant runs `rounds` times, interleaved, and its fastest round counts: on a shared
 * machine noise only ever slows a run down. A diagnostic row pins Sluice's flow limit at the bare
 * loop's best concurrency, to separate the pipeline's own cost from the adaptive limit's choice.
 *
 * CPU is this process's (the simulator runs in a child). To see where Sluice's time goes,
 * `--profile FILE` writes a V8 CPU profile of the dispatch phase alone (first Sluice round):
 *   node --import tsx bench/pipeline-overhead.ts --sluice-only --profile /tmp/dispatch.cpuprofile
 *   node --import tsx bench/lib/cpu-profile-summary.ts /tmp/dispatch.cpuprofile
 *
 * Usage: node --import tsx bench/pipeline-overhead.ts [--size quick|full] [--sluice-only] [--profile FILE]
 */
import { writeFile } from "node:fs/promises";
import inspector from "node:inspector/promises";
import { join } from "node:path";
import { type BareLoopResult, loadRequests, runBareLoop } from "./lib/bare-loop.js";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { startSimProcess } from "./lib/processes.js";
import { printTable, type Row, writeResult } from "./lib/report.js";
import { type EmbeddedRunResult, runEmbedded } from "./lib/sluice-embedded.js";

const preset = pickSize({
  quick: { requests: 5_000, rounds: 3, concurrencies: [16, 64, 256] },
  full: { requests: 50_000, rounds: 3, concurrencies: [8, 16, 32, 64, 128, 256, 512] },
});
const sluiceOnly = process.argv.includes("--sluice-only");
const PINNED_FALLBACK = 64;
const profileAt = process.argv.indexOf("--profile");
const profilePath = profileAt > 0 ? process.argv[profileAt + 1] : undefined;

/** Profiles from the in_progress event to the finalizing one; writes the profile at the end. */
function dispatchProfiler(path: string): { start(): void; end(): void } {
  const session = new inspector.Session();
  session.connect();
  let started: Promise<unknown> = Promise.resolve();
  return {
    start() {
      started = session.post("Profiler.enable").then(() => session.post("Profiler.start"));
    },
    end() {
      void started
        .then(() => session.post("Profiler.stop"))
        .then((r) => writeFile(path, JSON.stringify((r as { profile: unknown }).profile)))
        .finally(() => session.disconnect());
    },
  };
}

const faster = <T extends { ms: number }>(a: T | undefined, b: T): T => (a === undefined || b.ms < a.ms ? b : a);

await withScratch("pipeline", async (dir) => {
  const inputPath = join(dir, "input.jsonl");
  await generateInput({ path: inputPath, count: preset.requests, userChars: 200, maxTokens: 16, seed: 5 });
  const sim = await startSimProcess({ zeroCost: true });
  const n = preset.requests;
  try {
    const requests = sluiceOnly ? [] : await loadRequests(inputPath);
    // Warm-up: JIT and connections, not measured.
    if (!sluiceOnly) await runBareLoop(sim.url, requests.slice(0, 2000), 64);
    const bare = new Map<number, BareLoopResult & { ms: number }>();
    let adaptive: (EmbeddedRunResult & { ms: number }) | undefined;
    let pinned: (EmbeddedRunResult & { ms: number }) | undefined;
    const bestBare = () =>
      [...bare].reduce<[number, { ms: number }] | undefined>(
        (a, b) => (a === undefined || b[1].ms < a[1].ms ? b : a),
        undefined,
      );
    const sluice = async (tag: string, flow?: { initialLimit: number; minLimit: number; maxLimit: number }) => {
      await sim.reset();
      const r = await runEmbedded({
        inputPath,
        outputPath: join(dir, `output-${tag}.jsonl`),
        backend: `${sim.url}/v1`,
        workDir: join(dir, `work-${tag}`),
        ...(flow ? { flow } : {}),
        ...(profilePath !== undefined && tag === "adaptive-0" ? { onDispatch: dispatchProfiler(profilePath) } : {}),
      });
      if (r.completed !== n) throw new Error(`sluice completed ${r.completed} of ${n}`);
      return { ...r, ms: r.dispatch.ms };
    };
    for (let r = 0; r < preset.rounds; r++) {
      for (const c of sluiceOnly ? [] : preset.concurrencies) {
        const result = await runBareLoop(sim.url, requests, c);
        const prev = bare.get(c);
        bare.set(c, faster(prev, { ...result, ms: result.elapsedMs }));
      }
      adaptive = faster(adaptive, await sluice(`adaptive-${r}`));
      if (sluiceOnly) break;
      const at = bestBare()?.[0] ?? PINNED_FALLBACK;
      pinned = faster(pinned, await sluice(`pinned-${r}`, { initialLimit: at, minLimit: at, maxLimit: at }));
    }
    const s = adaptive as EmbeddedRunResult;
    const top = bestBare();
    const bestRate = top === undefined ? Number.NaN : n / (top[1].ms / 1000);
    const rate = (ms: number) => n / (ms / 1000);
    const rows: Row[] = [
      ...[...bare].map(([c, b]) => ({
        client: `bare undici c=${c}`,
        phase: "calls",
        "req/s": round(rate(b.ms), 0),
        "vs best bare": round(rate(b.ms) / bestRate),
        "cpu µs/req": Math.round(b.cpuMicros / n),
        "wall s": round(b.ms / 1000, 2),
      })),
      ...(
        [
          ["dispatch (claim→call→checkpoint)", s.dispatch],
          ["ingest (store, validate, insert)", s.ingest],
          ["finalize + output file", s.finalize],
          [
            "claim→call→checkpoint→finalize",
            { ms: s.dispatch.ms + s.finalize.ms, cpuMicros: s.dispatch.cpuMicros + s.finalize.cpuMicros },
          ],
          ["whole pipeline (with ingest)", s.total],
        ] as const
      ).map(([phase, p]) => ({
        client: "sluice embedded",
        phase,
        "req/s": round(rate(p.ms), 0),
        "vs best bare": round(rate(p.ms) / bestRate),
        "cpu µs/req": Math.round(p.cpuMicros / n),
        "wall s": round(p.ms / 1000, 2),
      })),
      ...(pinned === undefined
        ? []
        : [
            {
              client: `sluice, limit pinned at ${top?.[0] ?? PINNED_FALLBACK}`,
              phase: "dispatch (diagnostic)",
              "req/s": round(rate(pinned.dispatch.ms), 0),
              "vs best bare": round(rate(pinned.dispatch.ms) / bestRate),
              "cpu µs/req": Math.round(pinned.dispatch.cpuMicros / n),
              "wall s": round(pinned.dispatch.ms / 1000, 2),
            },
          ]),
    ];
    printTable(
      `pipeline overhead — ${n} requests against the zero-cost simulator (separate process), best of ${preset.rounds}`,
      rows,
    );
    const peak = s.limits.reduce((m, [, l]) => Math.max(m, l), 0);
    process.stdout.write(`sluice's adaptive flow limit peaked at ${peak}\n`);
    const path = await writeResult(sluiceOnly ? "pipeline-overhead-sluice-only" : "pipeline-overhead", {
      size: preset.size,
      requests: n,
      rounds: preset.rounds,
      bestBareConcurrency: top?.[0] ?? null,
      sluiceDispatchVsBestBare: round(rate(s.dispatch.ms) / bestRate),
      sluiceDispatchFinalizeVsBestBare: round(rate(s.dispatch.ms + s.finalize.ms) / bestRate),
      sluiceWholeVsBestBare: round(rate(s.total.ms) / bestRate),
      pinnedDispatchVsBestBare: pinned === undefined ? null : round(rate(pinned.dispatch.ms) / bestRate),
      adaptiveLimitPeak: peak,
      rows,
      sluice: { ...s, limits: undefined },
      sluicePinned: pinned === undefined ? null : { ...pinned, limits: undefined },
    });
    process.stdout.write(`→ ${path}\n`);
  } finally {
    await sim.stop();
  }
});
