/**
 * Dedup's cost at validation: ingest of a file whose lines are all deterministic (temperature 0,
 * one body in ten distinct) with `dedup: "off"` (no dedup_key, nothing in the partial index) and
 * with the default `deterministic` (every line keyed and indexed), then the merge pass over it.
 * In-process (ingestBatchInput and mergeDuplicates on a store, local blobs), rounds alternating
 * between the modes so a noisy machine weighs on both alike. The issue's bar for work added at
 * ingest: lines/s with it ≥ 0.8 of without.
 *
 * Usage: node --import tsx bench/dedup-ingest.ts [--size quick|full] [--postgres]
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import pg from "pg";
import { ingestBatchInput } from "../src/batch/ingest.js";
import { LocalBlobStore } from "../src/blob/local-blob-store.js";
import { acquireBatchLease } from "../src/store/batch-lease.js";
import { insertBatch, newBatchRow } from "../src/store/batches.js";
import { mergeDuplicates } from "../src/store/requests/dedup.js";
import type { DedupMode } from "../src/store/schema.js";
import { openStore, type Store, type StoreLocation } from "../src/store/store.js";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { printTable, type Row, writeResult } from "./lib/report.js";

const preset = pickSize({ quick: { lines: 200_000, rounds: 2 }, full: { lines: 1_000_000, rounds: 2 } });
const onPostgres = process.argv.includes("--postgres");
const ADMIN_URL = process.env["SLUICE_TEST_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const LIMITS = { maxLineBytes: 1 << 20, maxLines: 50_000_000, maxErrorsKept: 100 };

async function writeInput(path: string, lines: number): Promise<void> {
  const out = createWriteStream(path);
  for (let i = 0; i < lines; i++) {
    const body = {
      model: "m",
      temperature: 0,
      max_tokens: 16,
      messages: [{ role: "user", content: `q ${i % (lines / 10)} ${"x".repeat(180)}` }],
    };
    if (!out.write(`${JSON.stringify({ custom_id: `r-${i}`, method: "POST", url: "/v1/chat/completions", body })}\n`)) {
      await once(out, "drain");
    }
  }
  out.end();
  await once(out, "finish");
}

async function location(dir: string): Promise<{ at: StoreLocation; drop: () => Promise<void> }> {
  if (!onPostgres) return { at: { kind: "sqlite", path: join(dir, "sluice.db") }, drop: async () => {} };
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const name = `sluice_bench_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    at: { kind: "postgres", url: url.toString() },
    drop: async () => {
      await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

async function run(store: Store, blobs: LocalBlobStore, id: string, mode: DedupMode): Promise<Row> {
  const identity = { id, tenant_id: "default", endpoint: "/v1/chat/completions", input_file_id: "file-bench" };
  const now = Math.floor(Date.now() / 1000);
  await insertBatch(
    store,
    newBatchRow(
      { ...identity, completion_window: "24h", created_at: now, expires_at: now + 86_400 },
      { dedup_mode: mode },
    ),
  );
  const lease = { batchId: id, owner: "bench" };
  await acquireBatchLease(store, lease, "validating", 3_600_000);
  const t0 = performance.now();
  const result = await ingestBatchInput(
    store,
    blobs,
    { tenantId: "default", batchId: id, endpoint: "/v1/chat/completions", blobKey: "input", dedupMode: mode },
    LIMITS,
    undefined,
    lease,
  );
  const t1 = performance.now();
  if (!result.ok) throw new Error(`ingest failed: ${JSON.stringify(result.errors[0])}`);
  const { merged } = await mergeDuplicates(store, lease);
  const t2 = performance.now();
  return {
    mode,
    lines: result.total,
    "ingest s": round((t1 - t0) / 1000, 2),
    "ingest lines/s": Math.round(result.total / ((t1 - t0) / 1000)),
    "merge s": round((t2 - t1) / 1000, 2),
    merged,
  };
}

await withScratch("dedup-ingest", async (dir) => {
  const blobs = await LocalBlobStore.open(join(dir, "blobs"));
  const inputPath = join(dir, "input.jsonl");
  await writeInput(inputPath, preset.lines);
  await blobs.put("input", Readable.from(createReadStream(inputPath)));
  const db = await location(dir);
  const store = await openStore(db.at);
  const rows: Row[] = [];
  try {
    for (let r = 0; r < preset.rounds; r++) {
      for (const mode of ["off", "deterministic"] as const) {
        rows.push(await run(store, blobs, `batch_bench_${mode}_${r}`, mode));
        await store.db.deleteFrom("requests").execute();
      }
    }
  } finally {
    await store.close();
    await db.drop();
  }
  const mean = (mode: string) => {
    const of = rows.filter((x) => x.mode === mode).map((x) => Number(x["ingest lines/s"]));
    return of.reduce((a, b) => a + b, 0) / of.length;
  };
  const ratio = round(mean("deterministic") / mean("off"), 2);
  printTable(`dedup at ingest (${onPostgres ? "postgres" : "sqlite"}, ${preset.lines} lines)`, rows);
  console.log(`ingest lines/s, deterministic / off: ${ratio}`);
  await writeResult(`dedup-ingest-${onPostgres ? "postgres" : "sqlite"}`, { size: preset.size, rows, ratio });
});
