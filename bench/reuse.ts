/**
 * Never pay twice: what a resubmission costs, on `sluice sim`.
 *
 * 1. Resubmission of a file that finished 90%: a 90% subset of the file runs first (every tenth
 *    line left out: the lines that "failed"), then the whole file in the same work folder, as
 *    `sluice run` reruns it. Backend calls of the second run must be the 10% left; wall time of
 *    the second run / the first: target ≤ 0.2.
 * 2. Reuse lookup cost at ingest: validation (ingest + reuse pass) of N lines with reuse on
 *    (`custom_id+body`) vs off, on a store already holding another batch of N succeeded lines
 *    (so the index is full and nothing matches): throughput on / off, target ≥ 0.8. Beside it,
 *    validation of a resubmission where every line matches (the reuse pass writes N rows).
 *
 * Usage: node --import tsx bench/reuse.ts [--size quick|full]  (quick: 100k lines at ingest, full: 1M)
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createBatch } from "../src/batch/batch-service.js";
import { importLocalFile } from "../src/batch/local-file.js";
import { DEFAULT_LIMITS } from "../src/config.js";
import { validateJob } from "../src/dispatch/batch-jobs.js";
import { silentLogger } from "../src/logger.js";
import { openRuntime, type Runtime } from "../src/runtime.js";
import type { SimOptions } from "../src/sim/index.js";
import { getBatch } from "../src/store/batches.js";
import type { ReuseMode } from "../src/store/schema.js";
import { DEFAULT_TENANT } from "../src/store/tenants.js";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { startSimProcess } from "./lib/processes.js";
import { printTable, type Row, writeResult } from "./lib/report.js";
import { runEmbedded } from "./lib/sluice-embedded.js";

const preset = pickSize({
  quick: { resubmitLines: 5000, ingestLines: 100_000 },
  full: { resubmitLines: 20_000, ingestLines: 1_000_000 },
});
const SIM: SimOptions = { slots: 64, stepMs: 10, prefillMsPerToken: 0.05, minOut: 10, maxOut: 40, seed: 5 };

/** Copies `from` without every tenth line (lines 10, 20, …). */
async function ninetyPercent(from: string, to: string): Promise<void> {
  const out = createWriteStream(to);
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(from), crlfDelay: Number.POSITIVE_INFINITY })) {
    if (++n % 10 !== 0) out.write(`${line}\n`);
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

async function resubmission(dir: string): Promise<Row[]> {
  const full = join(dir, "full.jsonl");
  const subset = join(dir, "subset.jsonl");
  await generateInput({ path: full, count: preset.resubmitLines, userChars: 200, seed: 11 });
  await ninetyPercent(full, subset);
  const workDir = join(dir, "work");
  await mkdir(workDir);
  const sim = await startSimProcess(SIM);
  try {
    await sim.reset();
    const first = await runEmbedded({
      inputPath: subset,
      outputPath: join(dir, "out1.jsonl"),
      backend: `${sim.url}/v1`,
      workDir,
    });
    const firstCalls = (await sim.stats()).requestsServed;
    await sim.reset();
    const second = await runEmbedded({
      inputPath: full,
      outputPath: join(dir, "out2.jsonl"),
      backend: `${sim.url}/v1`,
      workDir,
    });
    const secondCalls = (await sim.stats()).requestsServed;
    return [
      {
        run: "first (90% subset)",
        lines: first.completed + first.failed,
        "backend calls": firstCalls,
        "wall s": round(first.total.ms / 1000, 2),
        ratio: null,
      },
      {
        run: "resubmission (whole file)",
        lines: second.completed + second.failed,
        "backend calls": secondCalls,
        "wall s": round(second.total.ms / 1000, 2),
        ratio: round(second.total.ms / first.total.ms),
      },
    ];
  } finally {
    await sim.stop();
  }
}

/** Validation of `input` as a new batch with `reuse`, timed (ingest and the reuse pass). */
async function validate(rt: Runtime, input: string, reuse: ReuseMode): Promise<{ ms: number; reused: number }> {
  const fileId = await importLocalFile(rt.ctx, DEFAULT_TENANT, input);
  const batch = await createBatch(rt.ctx, {
    tenantId: DEFAULT_TENANT,
    inputFileId: fileId,
    endpoint: "/v1/chat/completions",
    completionWindow: "24h",
    reuse,
  });
  const jobs = {
    ...rt.ctx,
    owner: "bench",
    batchLeaseMs: 600_000,
    signal: new AbortController().signal,
    outputFiles: false,
  };
  const t0 = performance.now();
  await validateJob(jobs, batch.id);
  const ms = performance.now() - t0;
  const b = await getBatch(rt.ctx.store, DEFAULT_TENANT, batch.id);
  if (b?.status !== "in_progress") throw new Error(`batch ${batch.id} is ${b?.status} after validation`);
  return { ms, reused: Number(b.reused) };
}

async function ingestCost(dir: string): Promise<Row[]> {
  const n = preset.ingestLines;
  const prior = join(dir, "prior.jsonl");
  const input = join(dir, "ingest.jsonl");
  await generateInput({ path: prior, count: n, userChars: 200, seed: 21 });
  await generateInput({ path: input, count: n, userChars: 200, seed: 22 });
  const rows: Row[] = [];
  const measure = async (label: string, mode: ReuseMode, file: string) => {
    const rt = await openRuntime(
      {
        dataDir: join(dir, "store"),
        store: { kind: "sqlite", path: join(dir, "store", "sluice.db") },
        logLevel: "silent",
        limits: DEFAULT_LIMITS,
      },
      { execution: { backend: "http://127.0.0.1:9/v1" }, logger: silentLogger, worker: false },
    );
    try {
      const r = await validate(rt, file, mode);
      rows.push({
        case: label,
        lines: n,
        reused: r.reused,
        s: round(r.ms / 1000, 2),
        "lines/s": Math.round((n / r.ms) * 1000),
      });
      return r.ms;
    } finally {
      await rt.close();
    }
  };
  await mkdir(join(dir, "store"));
  // The store holds N succeeded lines of another batch: a full index, and nothing that matches.
  {
    const rt = await openRuntime(
      {
        dataDir: join(dir, "store"),
        store: { kind: "sqlite", path: join(dir, "store", "sluice.db") },
        logLevel: "silent",
        limits: DEFAULT_LIMITS,
      },
      { execution: { backend: "http://127.0.0.1:9/v1" }, logger: silentLogger, worker: false },
    );
    try {
      await validate(rt, prior, "off");
      await rt.ctx.store.db
        .updateTable("requests")
        .set({ status: "succeeded", response_status: 200, result: '{"ok":true}', finished_ms: Date.now() })
        .execute();
    } finally {
      await rt.close();
    }
  }
  const off = await measure("reuse off", "off", input);
  const on = await measure("reuse on, nothing matches", "custom_id+body", input);
  await measure("reuse on, every line matches (resubmission)", "custom_id+body", prior);
  rows.push({ case: "on / off (throughput)", lines: n, reused: null, s: null, "lines/s": round(off / on) });
  return rows;
}

await withScratch("reuse", async (dir) => {
  const resubmit = await resubmission(dir);
  printTable(
    `reuse — resubmission of a file that finished 90% (${preset.resubmitLines} lines), sluice sim ${SIM.slots} slots`,
    resubmit,
  );
  const ingest = await ingestCost(dir);
  printTable(`reuse — validation (ingest + reuse pass) of ${preset.ingestLines} lines, SQLite`, ingest);
  const path = await writeResult("reuse", { size: preset.size, simulator: SIM, resubmit, ingest });
  process.stdout.write(`→ ${path}\n`);
});
