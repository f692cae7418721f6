/**
 * The embedded engine's overhead: generation tokens/s through the Backend (`call`, JSON in and
 * out, the sequence pool) vs node-llama-cpp driven directly (LlamaCompletion per sequence) on the
 * same generated demo model, same prompts, same max_tokens, measured side by side in one run.
 * Both sides sample identically (same seeds, temperature, top-p 1, no top-k), so they do the same
 * work: the same tokens, including the requests that end early on EOS.
 *
 * Usage: node --import tsx bench/llama-direct.ts [requests=128] [maxTokens=64] [threads=auto]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaCompletion } from "node-llama-cpp";
import { createLlamaCppBackend } from "../src/backends/llama-cpp/index.js";
import { defaultThreads } from "../src/backends/llama-cpp/parallelism.js";
import { writeDemoModel } from "../src/demo-model/demo-model.js";
import { printTable, type Row, writeResult } from "./lib/report.js";

const REQUESTS = Number(process.argv[2] ?? 128);
const MAX_TOKENS = Number(process.argv[3] ?? 64);
const THREADS = process.argv[4] === undefined ? defaultThreads() : Number(process.argv[4]);
const SEQUENCE_COUNTS = [1, 4, 8, 16, 32];
const ROUNDS = 3;

const prompts = Array.from({ length: REQUESTS }, (_, i) => `Request ${i}: summarise`);

interface Measurement {
  tokens: number;
  seconds: number;
}

/** Runs `work(i, worker)` for every request index on `workers` concurrent loops. */
async function drive(workers: number, work: (i: number, worker: number) => Promise<number>): Promise<Measurement> {
  let next = 0;
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      for (let i = next++; i < REQUESTS; i = next++) {
        // Not `tokens += await …`: that reads `tokens` before the await and loses concurrent updates.
        const generated = await work(i, worker);
        tokens += generated;
      }
    }),
  );
  return { tokens, seconds: (performance.now() - t0) / 1000 };
}

/** node-llama-cpp as its docs show it: one LlamaCompletion per sequence, one loop per sequence. */
async function direct(modelPath: string, sequences: number): Promise<Measurement> {
  const llama = await getLlama({ gpu: false, build: "never" });
  try {
    const model = await llama.loadModel({ modelPath });
    const context = await model.createContext({ sequences, contextSize: 2048, threads: THREADS });
    const slots = Array.from({ length: sequences }, () => {
      const sequence = context.getSequence();
      return { sequence, completion: new LlamaCompletion({ contextSequence: sequence }) };
    });
    return await drive(sequences, async (i, worker) => {
      const { sequence, completion } = slots[worker]!;
      const before = sequence.tokenMeter.usedOutputTokens;
      await completion.generateCompletion(prompts[i]!, {
        maxTokens: MAX_TOKENS,
        temperature: 0.8,
        topP: 1,
        topK: 0,
        seed: i,
        repeatPenalty: false,
      });
      return sequence.tokenMeter.usedOutputTokens - before;
    });
  } finally {
    await llama.dispose();
  }
}

async function viaBackend(
  modelPath: string,
  parallel: number | undefined,
): Promise<Measurement & { sequences: number }> {
  const backend = await createLlamaCppBackend({
    model: modelPath,
    threads: THREADS,
    gpu: false,
    contextSize: 2048,
    ...(parallel === undefined ? {} : { parallel }),
  });
  try {
    const signal = new AbortController().signal;
    const m = await drive(backend.maxConcurrency ?? 1, async (i) => {
      const body = {
        model: "demo",
        prompt: prompts[i],
        max_tokens: MAX_TOKENS,
        temperature: 0.8,
        seed: i,
      };
      const result = await backend.call({
        endpoint: "/v1/completions",
        body: JSON.stringify(body),
        model: "demo",
        signal,
      });
      if (result.kind !== "response" || result.status !== 200 || result.usage === null) {
        throw new Error(`backend call failed: ${JSON.stringify(result)}`);
      }
      return result.usage.outputTokens;
    });
    return { ...m, sequences: backend.maxConcurrency ?? 1 };
  } finally {
    await backend.close();
  }
}

const tps = (m: Measurement) => m.tokens / m.seconds;
const best = <T extends Measurement>(runs: T[]): T => runs.reduce((a, b) => (tps(b) > tps(a) ? b : a));

const dir = await mkdtemp(join(tmpdir(), "sluice-bench-llama-"));
try {
  const modelPath = await writeDemoModel(join(dir, "demo.gguf"));
  const rows: Row[] = [];
  const directRuns = new Map<number, Measurement[]>();
  const backendRuns = new Map<number, Measurement[]>();
  const defaultRuns: Array<Measurement & { sequences: number }> = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, so drift on a shared machine hits both sides alike.
    for (const n of SEQUENCE_COUNTS) {
      directRuns.set(n, [...(directRuns.get(n) ?? []), await direct(modelPath, n)]);
      backendRuns.set(n, [...(backendRuns.get(n) ?? []), await viaBackend(modelPath, n)]);
    }
    defaultRuns.push(await viaBackend(modelPath, undefined));
  }
  for (const n of SEQUENCE_COUNTS) {
    const d = best(directRuns.get(n) ?? []);
    const b = best(backendRuns.get(n) ?? []);
    rows.push({
      sequences: n,
      "direct tok/s": tps(d),
      "backend tok/s": tps(b),
      ratio: tps(b) / tps(d),
      // Same seeds and sampling on both sides: the token totals should (nearly) match.
      "direct tokens": d.tokens,
      "backend tokens": b.tokens,
    });
  }
  const bestDirectN = SEQUENCE_COUNTS.reduce((a, n) =>
    tps(best(directRuns.get(n) ?? [])) > tps(best(directRuns.get(a) ?? [])) ? n : a,
  );
  const bestDirect = best(directRuns.get(bestDirectN) ?? []);
  const backendDefault = best(defaultRuns);
  rows.push({
    sequences: `default (${backendDefault.sequences}) vs direct best (${bestDirectN})`,
    "direct tok/s": tps(bestDirect),
    "backend tok/s": tps(backendDefault),
    ratio: tps(backendDefault) / tps(bestDirect),
    "direct tokens": bestDirect.tokens,
    "backend tokens": backendDefault.tokens,
  });
  printTable(`llama.cpp generation, ${REQUESTS} requests × ${MAX_TOKENS} tokens, ${THREADS} thread(s)`, rows);
  const path = await writeResult("llama-direct", {
    workload: {
      requests: REQUESTS,
      maxTokens: MAX_TOKENS,
      threads: THREADS,
      model: "sluice demo (2 layers, n_embd 128)",
    },
    rows,
    bestDirect: { sequences: bestDirectN, tokensPerSecond: tps(bestDirect) },
    backendDefault: { sequences: backendDefault.sequences, tokensPerSecond: tps(backendDefault) },
    ratio: tps(backendDefault) / tps(bestDirect),
  });
  process.stdout.write(`\nwrote ${path}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
