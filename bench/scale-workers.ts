/**
 * Scale-out on PostgreSQL, two measurements:
 *
 * 1. Throughput vs worker processes: one `sluice serve --no-worker`, then 1, 2, 4 `sluice worker`
 *    processes against one simulator with ample capacity (4096 slots, 64 ms per request: long
 *    enough that latency noise on a busy machine does not stall the adaptive concurrency).
 *    Requests/s over the dispatch phase (in_progress → every row terminal; ingest excluded), the
 *    machine's CPU busy share during it, and where the CPU went. On a 2-core machine the CPU caps
 *    it long before the store does: the table says when.
 * 2. Claim latency as a large batch drains: N rows (200k quick, 1M full) inserted with COPY, then
 *    drained claim by claim (512 rows, marked succeeded in bulk like a group commit). The claim's
 *    time at 0 %, 50 % and 90 % drained should stay flat: it walks the partial index of pending
 *    rows, which finished rows leave.
 *
 * Usage: node --import tsx bench/scale-workers.ts [--size quick|full] [--workers 1,2,4]
 *        [--requests N] [--claim-rows N] [--skip-throughput] [--skip-claims]
 * Needs the built CLI (`npm run build`) and PostgreSQL (admin URL SLUICE_TEST_PG_URL, default
 * postgres://postgres@127.0.0.1:5432/test); writes bench/results/scale-workers.json.
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import pg from "pg";
import { claimRequests } from "../src/store/claims/leased-claim.js";
import type { RequestInsertRow } from "../src/store/dialect.js";
import { insertRequestChunk } from "../src/store/requests/insert.js";
import { openStore, type Store } from "../src/store/store.js";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { type Child, procCpuMicros, sampleGauges, spawnSluice, startSimProcess } from "./lib/processes.js";
import { printTable, type Row, writeResult } from "./lib/report.js";
import { type ApiTarget, createBatch, uploadFile } from "./lib/sluice-api.js";

const preset = pickSize({
  quick: { requests: 20_000, workers: [1, 2, 4], claimRows: 200_000 },
  full: { requests: 100_000, workers: [1, 2, 4, 8], claimRows: 1_000_000 },
});
const flag = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const WORKERS = (flag("--workers") ?? preset.workers.join(",")).split(",").map(Number);
const REQUESTS = Number(flag("--requests") ?? preset.requests);
const CLAIM_ROWS = Number(flag("--claim-rows") ?? preset.claimRows);
const CLAIM_LIMIT = 512;
const ADMIN_URL = process.env["SLUICE_TEST_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const API_KEY = "sk-bench-scale-0123456789";

/** Busy and total jiffies of the whole machine (/proc/stat). */
async function machineCpu(): Promise<{ busy: number; total: number }> {
  const first = (await readFile("/proc/stat", "utf8")).split("\n")[0] as string;
  const v = first.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

/** CPU of every live `postgres` process (server backends serve all clients, this run's included), µs. */
async function postgresCpuMicros(): Promise<number> {
  let total = 0;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`/proc/${entry}/comm`, "utf8").catch(() => "");
    if (comm.trim() === "postgres") total += await procCpuMicros(Number(entry)).catch(() => 0);
  }
  return total;
}

async function withDatabase<T>(body: (url: string) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  const name = `sluice_bench_scale_${randomBytes(4).toString("hex")}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  try {
    return await body(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

interface ThroughputRow extends Row {
  workers: number;
  requests: number;
  "dispatch s": number;
  "req/s": number;
  "vs 1 worker": number;
  /** Mean requests running in the simulator: how much concurrency the workers sustained. */
  "engine in flight": number;
  "scaling eff.": number;
  "machine CPU busy": number;
  "workers CPU": number;
  "api CPU": number;
  "sim CPU": number;
  "postgres CPU": number;
  "other CPU": number;
  "worker CPU ms/100 req": number;
}

async function throughput(url: string, dir: string): Promise<ThroughputRow[]> {
  const inputPath = join(dir, "input.jsonl");
  await generateInput({ path: inputPath, count: REQUESTS, userChars: 120, maxTokens: 32, seed: 11 });
  // Ample capacity: 4096 slots at 2 ms per token, 32 tokens per answer → ~64k requests/s.
  const sim = await startSimProcess({ slots: 4096, stepMs: 2, prefillMsPerToken: 0, cacheBlocks: 0 });
  const common = ["--store", url, "--blobs", join(dir, "blobs"), "--log-level", "warn"];
  const api = await spawnSluice(
    ["serve", "--no-worker", "--port", "0", "--data", join(dir, "api"), ...common],
    /listening on (http:\/\/\S+)\/v1/,
    { SLUICE_API_KEY: API_KEY },
  );
  const target: ApiTarget = { baseUrl: `${api.match[1] as string}/v1`, apiKey: API_KEY };
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  const rows: ThroughputRow[] = [];
  try {
    const fileId = await uploadFile(target, inputPath);
    for (const n of WORKERS) {
      const workers: Child[] = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          spawnSluice(
            ["worker", "--data", join(dir, `w${n}-${i}`), ...common, "--backend", `${sim.url}/v1`],
            /Sluice worker \S+ started/,
          ),
        ),
      );
      try {
        const batch = await createBatch(target, fileId);
        const state = async () =>
          (
            await db.query<{ status: string; done: number; total: number }>(
              "SELECT status, completed + failed AS done, total FROM batches WHERE id = $1",
              [batch.id],
            )
          ).rows[0];
        const cpuOf = async () => ({
          machine: await machineCpu(),
          workers: (await Promise.all(workers.map((w) => procCpuMicros(w.pid)))).reduce((a, b) => a + b, 0),
          api: await procCpuMicros(api.pid),
          sim: await procCpuMicros(sim.pid),
          postgres: await postgresCpuMicros(),
        });
        let s = await state();
        while (s?.status === "validating") {
          await new Promise((r) => setTimeout(r, 20));
          s = await state();
        }
        await sim.reset();
        const gauges = sampleGauges(sim);
        const t0 = performance.now();
        const c0 = await cpuOf();
        while (s !== undefined && s.status === "in_progress" && Number(s.done) < Number(s.total)) {
          await new Promise((r) => setTimeout(r, 50));
          s = await state();
        }
        const seconds = (performance.now() - t0) / 1000;
        const c1 = await cpuOf();
        const engine = await gauges(REQUESTS);
        if (s === undefined || Number(s.done) < REQUESTS) throw new Error(`batch ended ${s?.status ?? "missing"}`);
        // Shares of the whole machine (all cores) during the dispatch phase.
        const machineMicros = ((c1.machine.total - c0.machine.total) / 100) * 1e6;
        const share = (micros: number) => round(micros / machineMicros, 3);
        const busy = ((c1.machine.busy - c0.machine.busy) / 100) * 1e6;
        const workersCpu = c1.workers - c0.workers;
        const apiCpu = c1.api - c0.api;
        const simCpu = c1.sim - c0.sim;
        const pgCpu = Math.max(0, c1.postgres - c0.postgres);
        const rps = REQUESTS / seconds;
        const base = rows[0]?.["req/s"] ?? rps;
        rows.push({
          workers: n,
          requests: REQUESTS,
          "dispatch s": round(seconds, 2),
          "req/s": round(rps, 0),
          "vs 1 worker": round(rps / base, 2),
          "engine in flight": round(engine.meanRunning, 0),
          "scaling eff.": round(rps / (base * n), 2),
          "machine CPU busy": share(busy),
          "workers CPU": share(workersCpu),
          "api CPU": share(apiCpu),
          "sim CPU": share(simCpu),
          "postgres CPU": share(pgCpu),
          "other CPU": share(Math.max(0, busy - workersCpu - apiCpu - simCpu - pgCpu)),
          "worker CPU ms/100 req": round(workersCpu / 1000 / (REQUESTS / 100), 1),
        });
        // Let finalization finish before the workers go (not measured).
        while ((await state())?.status !== "completed") await new Promise((r) => setTimeout(r, 50));
      } finally {
        await Promise.all(workers.map((w) => w.stop()));
      }
    }
  } finally {
    await db.end();
    await api.stop();
    await sim.stop();
  }
  return rows;
}

interface ClaimRow extends Row {
  drained: string;
  claims: number;
  "median ms": number;
  "p90 ms": number;
  "max ms": number;
  "dead tuples": number | null;
}

function rowsFor(batchId: string, from: number, n: number): RequestInsertRow[] {
  return Array.from({ length: n }, (_, k) => {
    const line = from + k;
    return {
      tenant_id: "default",
      batch_id: batchId,
      line,
      custom_id: `req-${line}`,
      model: "sluice-sim",
      body: JSON.stringify({ model: "sluice-sim", messages: [{ role: "user", content: `Request ${line}` }] }),
      status: "pending",
      prefix_key: null,
    };
  });
}

const quantile = (sorted: readonly number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

async function claimLatency(store: Store): Promise<{ rows: ClaimRow[]; insertS: number; drainS: number }> {
  const batchId = "batch_claim_bench";
  const t0 = performance.now();
  for (let line = 1; line <= CLAIM_ROWS; line += 5000)
    await insertRequestChunk(store, rowsFor(batchId, line, Math.min(5000, CLAIM_ROWS - line + 1)));
  const insertS = (performance.now() - t0) / 1000;
  await sql`ANALYZE requests`.execute(store.db);
  const marks = [0, 0.5, 0.9];
  const samples = new Map<number, number[]>(marks.map((m) => [m, []]));
  const dead = new Map<number, number | null>();
  // A mark's claims: those starting within 2 % (at least 5 claims' worth) after it.
  const span = Math.max(0.02, (5 * CLAIM_LIMIT) / CLAIM_ROWS);
  const deadTuples = async () =>
    Number(
      (
        await sql<{ n: number }>`SELECT n_dead_tup AS n FROM pg_stat_user_tables WHERE relname = 'requests'`.execute(
          store.db,
        )
      ).rows[0]?.n ?? Number.NaN,
    );
  let drained = 0;
  const t1 = performance.now();
  for (;;) {
    const fraction = drained / CLAIM_ROWS;
    const mark = marks.find((m) => fraction >= m && fraction < m + span);
    if (mark !== undefined && !dead.has(mark)) dead.set(mark, await deadTuples());
    const started = performance.now();
    const claimed = await claimRequests(store, { batchId, owner: "bench", leaseMs: 60_000, limit: CLAIM_LIMIT });
    const ms = performance.now() - started;
    if (claimed.length === 0) break;
    if (mark !== undefined) samples.get(mark)?.push(ms);
    // The group commit's effect on these rows, in one statement.
    await store.db
      .updateTable("requests")
      .set({ status: "succeeded", lease_owner: null, lease_expires_ms: null, result: "{}", finished_ms: Date.now() })
      .where("batch_id", "=", batchId)
      .where("lease_owner", "=", "bench")
      .where("status", "=", "running")
      .execute();
    drained += claimed.length;
  }
  const drainS = (performance.now() - t1) / 1000;
  if (drained !== CLAIM_ROWS) throw new Error(`drained ${drained} of ${CLAIM_ROWS} rows`);
  const rows = marks.map((m): ClaimRow => {
    const s = [...(samples.get(m) ?? [])].sort((a, b) => a - b);
    return {
      drained: `${Math.round(m * 100)} %`,
      claims: s.length,
      "median ms": round(quantile(s, 0.5), 2),
      "p90 ms": round(quantile(s, 0.9), 2),
      "max ms": round(s.at(-1) ?? Number.NaN, 2),
      "dead tuples": dead.get(m) ?? null,
    };
  });
  return { rows, insertS, drainS };
}

await withScratch("scale-workers", async (dir) => {
  const result: Record<string, unknown> = {
    workload: {
      requests: REQUESTS,
      workers: WORKERS,
      claimRows: CLAIM_ROWS,
      claimLimit: CLAIM_LIMIT,
      cpus: cpus().length,
    },
  };
  if (!process.argv.includes("--skip-throughput")) {
    const rows = await withDatabase((url) => throughput(url, dir));
    printTable(`Throughput vs worker processes (PostgreSQL, ${REQUESTS} requests, ample simulator)`, rows);
    result["throughput"] = rows;
  }
  if (!process.argv.includes("--skip-claims")) {
    const claims = await withDatabase(async (url) => {
      const store = await openStore({ kind: "postgres", url });
      try {
        return await claimLatency(store);
      } finally {
        await store.close();
      }
    });
    printTable(
      `Claim latency while a ${CLAIM_ROWS.toLocaleString("en-US")}-row batch drains (${CLAIM_LIMIT} rows per claim; insert ${claims.insertS.toFixed(1)} s, drain ${claims.drainS.toFixed(1)} s)`,
      claims.rows,
    );
    const at = (i: number) => claims.rows[i]?.["median ms"] ?? Number.NaN;
    process.stdout.write(
      `claim median at 50 % / 0 %: ${(at(1) / at(0)).toFixed(2)}; at 90 % / 0 %: ${(at(2) / at(0)).toFixed(2)}\n`,
    );
    result["claims"] = claims;
  }
  process.stdout.write(`wrote ${await writeResult("scale-workers", result)}\n`);
});
