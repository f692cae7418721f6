/**
 * Shared prefixes: many requests sharing a few long system prompts, in shuffled order, against a
 * simulator whose prefix cache holds only part of the prompts at once. Sluice (default settings;
 * it dispatches in input order, with no prefix-aware ordering yet) against the plain client on
 * the same shuffled file, and the plain client on the SORTED file as the reference for what
 * prefix-aware ordering could reach. Same simulator process, stats reset (cold cache) per run.
 *
 * Usage: node --import tsx bench/shared-prefixes.ts [--size quick|full]
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
  quick: { requests: 600, prompts: 8 },
  full: { requests: 4000, prompts: 16 },
});
const N = 16;
// 2,000-token system prompts = 125 cache blocks each; the cache holds 4 of them.
const PROMPT_CHARS = 8000;
const SIM: SimOptions = {
  slots: N,
  stepMs: 5,
  prefillMsPerToken: 0.1,
  blockSize: 16,
  cacheBlocks: 500,
  seed: 17,
};

interface Measured {
  client: string;
  order: string;
  stats: SimStats;
  failed: number;
  limits?: [number, number][];
}

async function measure(
  sim: SimProcess,
  client: string,
  order: string,
  run: () => Promise<{ failed: number; limits?: [number, number][] }>,
): Promise<Measured> {
  await sim.reset();
  const { failed, limits } = await run();
  return { client, order, stats: await sim.stats(), failed, ...(limits ? { limits } : {}) };
}

await withScratch("prefixes", async (dir) => {
  const common = {
    count: preset.requests,
    systemPrompts: preset.prompts,
    systemPromptChars: PROMPT_CHARS,
    userChars: 200,
    maxTokens: 8,
    seed: 21,
  };
  const shuffled = join(dir, "shuffled.jsonl");
  const sorted = join(dir, "sorted.jsonl");
  await generateInput({ ...common, path: shuffled, shuffle: true });
  await generateInput({ ...common, path: sorted });

  const sim = await startSimProcess(SIM);
  const results: Measured[] = [];
  try {
    const plain = (input: string, c: number) => async () =>
      runPlainClient({
        inputPath: input,
        outputPath: join(dir, `plain-${c}.jsonl`),
        baseUrl: `${sim.url}/v1`,
        concurrency: c,
        maxAttempts: 50,
      });
    results.push(
      await measure(sim, "sluice (default)", "shuffled", async () =>
        runEmbedded({
          inputPath: shuffled,
          outputPath: join(dir, "sluice.jsonl"),
          backend: `${sim.url}/v1`,
          workDir: join(dir, "work"),
        }),
      ),
    );
    results.push(await measure(sim, `plain c=${N}`, "shuffled", plain(shuffled, N)));
    results.push(await measure(sim, `plain c=${2 * N}`, "shuffled", plain(shuffled, 2 * N)));
    results.push(await measure(sim, `plain c=${N}`, "sorted (reference)", plain(sorted, N)));
  } finally {
    await sim.stop();
  }

  const rate = (s: SimStats) => s.requestsServed / (s.makespanMs / 1000);
  const bestShuffled = Math.max(...results.filter((r) => r.order === "shuffled").map((r) => rate(r.stats)));
  const rows: Row[] = results.map((r) => ({
    client: r.client,
    order: r.order,
    failed: r.failed,
    "req/s": round(rate(r.stats), 1),
    "vs best shuffled": round(rate(r.stats) / bestShuffled),
    "cached/prompt tokens": round(r.stats.cachedTokens / Math.max(1, r.stats.promptTokens)),
    "block hit rate": round(r.stats.cacheHits / Math.max(1, r.stats.cacheHits + r.stats.cacheMisses)),
    efficiency: round(r.stats.efficiency),
    "max queue": r.stats.maxQueueDepth,
  }));
  printTable(
    `shared prefixes — ${preset.requests} requests over ${preset.prompts} system prompts of ~${PROMPT_CHARS / 4} tokens; ` +
      `cache ${SIM.cacheBlocks} blocks (≈ ${Math.round(((SIM.cacheBlocks ?? 0) * 16 * 4) / PROMPT_CHARS)} prompts), ${N} slots`,
    rows,
  );
  const trace = results[0]?.limits ?? [];
  process.stdout.write(
    `sluice flow limit (ms since dispatch began→limit): ${trace.map(([t, l]) => `${t}→${l}`).join(" ")}\n`,
  );
  const path = await writeResult("shared-prefixes", {
    size: preset.size,
    requests: preset.requests,
    systemPrompts: preset.prompts,
    systemPromptChars: PROMPT_CHARS,
    simulator: SIM,
    rows,
    sluiceLimitTrace: trace,
    rawStats: results.map((r) => ({ client: r.client, order: r.order, stats: r.stats })),
  });
  process.stdout.write(`→ ${path}\n`);
});
