/**
 * The scaled topology for real: one PostgreSQL database, one S3 bucket (s3rver), an API-only
 * process (`sluice serve --no-worker`) and three `sluice worker` processes, all separate OS
 * processes running the built CLI, against a slot-limited engine on loopback. Batches go in
 * through the official `openai` SDK.
 *
 * - kill -9 of a worker mid-batch: every custom_id exactly once in the output with its own
 *   answer; duplicate backend calls only for rows the dead worker held when it died.
 * - fairness: a small batch submitted behind a large one finishes while the large one is still
 *   far from done; with no crash, no row is ever called twice by concurrent workers.
 *
 * Nothing here waits on wall-clock time: a lease expiry is simulated by expiring the dead
 * worker's leases in the store (the clock jumping past `leaseMs`), and every wait polls state.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_WORKER_OPTIONS } from "../../src/dispatch/worker.js";
import { openStore, type Store } from "../../src/store/store.js";
import { type S3TestServer, startS3Server } from "../helpers/s3.js";
import { chatLine, waitForStatus } from "../helpers/server.js";
import { STORES, type TestDatabase } from "../helpers/stores.js";
import { echoOf, type SlotEngine, startSlotEngine } from "./helpers/slot-engine.js";
import { ensureBuilt, type SluiceProcess, startApi, startWorker } from "./helpers/sluice-process.js";

const postgres = STORES.find((k) => k.name === "postgres");
const API_KEY = "sk-scale-test-0123456789";
const SLOTS = 8;

interface RunningWorker {
  proc: SluiceProcess;
  id: string;
}

type OutputLine = {
  custom_id: string;
  response: { status_code: number; body: { choices: { message: { content: string } }[] } } | null;
  error: unknown;
};

/** Polls `check` until it holds; fails with `what` after `timeoutMs`. */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  detail: () => string = () => "",
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} ${detail()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.skipIf(postgres === undefined)("scaled deployment: API process + worker processes", () => {
  let db: TestDatabase;
  let s3: S3TestServer;
  let engine: SlotEngine;
  let store: Store;
  let dataRoot: string;
  let common: (name: string) => string[];
  let env: Record<string, string>;
  let api: SluiceProcess;
  let client: OpenAI;
  const workers = new Map<string, RunningWorker>();

  // Each worker caps its calls at the engine's slot count (`concurrency` in its routing file), so
  // its window of claimed rows stays small and the workers share a batch whatever the adaptive
  // controller would do; every worker calls through its own tagged URL.
  const spawnWorker = async (tag: string) => {
    const config = join(dataRoot, `${tag}.json`);
    const routes = { routes: [{ match: "*", backends: [{ url: engine.urlFor(tag), concurrency: SLOTS }] }] };
    await writeFile(config, JSON.stringify(routes));
    const [proc, id] = await startWorker(tag, [...common(tag), "--config", config], env);
    workers.set(tag, { proc, id });
  };

  beforeAll(async () => {
    await ensureBuilt();
    db = await (postgres as NonNullable<typeof postgres>).createDatabase();
    if (db.location.kind !== "postgres") throw new Error("expected a PostgreSQL database");
    // Opened first: the schema is migrated before the children start (they would take turns on
    // the migration lock anyway).
    store = await openStore(db.location);
    s3 = await startS3Server("sluice-scale");
    engine = await startSlotEngine({ slots: SLOTS, serviceMs: 40 });
    dataRoot = await mkdtemp(join(tmpdir(), "sluice-scale-"));
    const storeUrl = db.location.url;
    common = (name) => [
      "--store",
      storeUrl,
      "--blobs",
      `s3://${s3.bucket}/scale`,
      "--data",
      join(dataRoot, name),
      "--log-level",
      "warn",
    ];
    env = { ...s3.env, SLUICE_API_KEY: API_KEY };
    const [started] = await Promise.all([
      startApi(common("api"), env),
      spawnWorker("w1"),
      spawnWorker("w2"),
      spawnWorker("w3"),
    ]);
    [api] = started;
    client = new OpenAI({ baseURL: started[1], apiKey: API_KEY, maxRetries: 0 });
  }, 300_000);

  afterAll(async () => {
    await Promise.allSettled([api?.stop(), ...[...workers.values()].map((w) => w.proc.stop())]);
    await store?.close();
    await Promise.allSettled([engine?.close(), s3?.stop(), db?.drop()]);
    if (dataRoot !== undefined) await rm(dataRoot, { recursive: true, force: true });
  });

  const submit = async (prefix: string, n: number) => {
    const lines = Array.from({ length: n }, (_, i) => chatLine(`${prefix}-${i}`, `${prefix} ${i}`));
    const file = await client.files.create({
      file: await toFile(Buffer.from(`${lines.join("\n")}\n`), `${prefix}.jsonl`),
      purpose: "batch",
    });
    return client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
  };

  /** The completed batch's output holds every custom_id exactly once, each with its own answer. */
  const expectExactOutput = async (batchId: string, prefix: string, n: number) => {
    const done = await waitForStatus(client, batchId, ["completed"], 90_000);
    expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
    expect(done.error_file_id).toBeNull();
    const text = await (await client.files.content(done.output_file_id as string)).text();
    const lines = text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as OutputLine);
    expect(lines).toHaveLength(n);
    const seen = new Set<string>();
    for (const line of lines) {
      expect(seen.has(line.custom_id)).toBe(false);
      seen.add(line.custom_id);
      const i = Number(line.custom_id.slice(prefix.length + 1));
      expect(line.response?.status_code).toBe(200);
      expect(line.response?.body.choices[0]?.message.content).toBe(echoOf(`${prefix} ${i}`));
    }
    expect(seen.size).toBe(n);
  };

  const metrics = async () =>
    (await fetch(new URL("/metrics", client.baseURL), { headers: { authorization: `Bearer ${API_KEY}` } })).text();
  const gauge = (text: string, series: string) =>
    Number(
      text
        .split("\n")
        .find((l) => l.startsWith(`${series} `))
        ?.slice(series.length + 1),
    );

  const callsFor = (prefix: string, n: number) =>
    Array.from({ length: n }, (_, i) => engine.counts.get(`${prefix} ${i}`) ?? 0);

  it("survives kill -9 of a worker mid-batch: exactly-once output, duplicates bounded by its leases", async () => {
    const n = 600;
    const batch = await submit("kill", n);
    // Every worker is pulling from the batch before one of them dies.
    await until(
      "all three workers to call the engine",
      () => ["w1", "w2", "w3"].every((t) => engine.callsBy(t) >= 10),
      () => JSON.stringify(["w1", "w2", "w3"].map((t) => [t, engine.callsBy(t), workers.get(t)?.proc.output()])),
    );
    const victim = workers.get("w2") as RunningWorker;
    await victim.proc.kill9();
    const progress = await client.batches.retrieve(batch.id);
    expect(progress.status).toBe("in_progress");
    expect(progress.request_counts?.completed ?? 0).toBeLessThan(n);

    // What the dead worker held: claimed and not checkpointed. Only these may run twice.
    const held = await store.db
      .selectFrom("requests")
      .select("custom_id")
      .where("batch_id", "=", batch.id)
      .where("lease_owner", "=", victim.id)
      .where("status", "=", "running")
      .execute();
    const heldPrompts = new Set(held.map((r) => `kill ${r.custom_id.slice("kill-".length)}`));
    expect(held.length).toBeGreaterThan(0);
    expect(held.length).toBeLessThanOrEqual(DEFAULT_WORKER_OPTIONS.maxWindow);

    // The clock jumps past the lease: the survivors' housekeeping hands these rows back out.
    await store.db
      .updateTable("requests")
      .set({ lease_expires_ms: 0 })
      .where("lease_owner", "=", victim.id)
      .where("status", "=", "running")
      .execute();
    const before = { w1: engine.callsBy("w1"), w3: engine.callsBy("w3") };

    await expectExactOutput(batch.id, "kill", n);

    // Both survivors kept working after the kill: the rest of the batch was shared.
    expect(engine.callsBy("w1")).toBeGreaterThan(before.w1);
    expect(engine.callsBy("w3")).toBeGreaterThan(before.w3);
    const counts = callsFor("kill", n);
    expect(counts.every((c) => c >= 1 && c <= 2)).toBe(true);
    const duplicated = counts.flatMap((c, i) => (c > 1 ? [`kill ${i}`] : []));
    for (const p of duplicated) expect(heldPrompts.has(p)).toBe(true);
    expect(duplicated.length).toBeLessThanOrEqual(held.length);
    workers.delete("w2");
  });

  it("finishes a small batch submitted behind a large one long before it; never runs a row twice", async () => {
    // A fresh worker joins the survivors: three again.
    await spawnWorker("w4");
    const big = 1500;
    const small = 20;
    const bigBatch = await submit("big", big);
    await until("the large batch to make progress", async () => {
      const b = await client.batches.retrieve(bigBatch.id);
      return (b.request_counts?.completed ?? 0) > 0;
    });
    const smallBatch = await submit("small", small);
    await waitForStatus(client, smallBatch.id, ["completed", "failed"], 90_000);
    const bigThen = await client.batches.retrieve(bigBatch.id);
    expect(bigThen.status).toBe("in_progress");
    // The small batch did not queue behind the large one's remaining rows: when its last call was
    // made, the large batch still had rows the engine had not seen. (Counted in engine calls, not
    // in time: workers lease a window ahead, and a slow machine only shifts where the small one lands.)
    const lastSmall = engine.calls.findLastIndex((c) => c.prompt.startsWith("small "));
    const bigBefore = engine.calls.slice(0, lastSmall + 1).filter((c) => c.prompt.startsWith("big ")).length;
    expect(bigBefore).toBeLessThan(big);
    // The API process reports the shared backlog (what the worker autoscaler follows). Workers
    // lease a window ahead of their calls, so the rest may be pending or running: count both.
    const during = await metrics();
    const backlog = gauge(during, "sluice_backlog_requests");
    expect(backlog).toBeGreaterThan(0);
    expect(backlog).toBe(gauge(during, "sluice_pending_requests") + gauge(during, "sluice_running_requests"));

    await expectExactOutput(smallBatch.id, "small", small);
    await expectExactOutput(bigBatch.id, "big", big);
    // No crash in this run: concurrent claimers never took the same row.
    expect(callsFor("big", big).every((c) => c === 1)).toBe(true);
    expect(callsFor("small", small).every((c) => c === 1)).toBe(true);
    const bigCallsBy = (tag: string) => engine.calls.filter((c) => c.tag === tag && c.prompt.startsWith("big ")).length;
    for (const tag of ["w1", "w3", "w4"]) expect(bigCallsBy(tag)).toBeGreaterThan(0);
    const after = await metrics();
    expect(gauge(after, "sluice_pending_requests")).toBe(0);
    expect(gauge(after, "sluice_running_requests")).toBe(0);
    expect(gauge(after, "sluice_backlog_requests")).toBe(0);
    expect(gauge(after, 'sluice_batches{status="completed"}')).toBe(3);
  });
});
