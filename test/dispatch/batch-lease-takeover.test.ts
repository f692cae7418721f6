/**
 * A finalizer that loses its batch lease mid-job changes nothing. Two workers on PostgreSQL: the
 * first pauses while writing the output file (its blob write is held at a gate, as a stalled
 * process would be), the clock passes its lease (the lease's expiry is moved into the past), the
 * second takes the batch over and finishes it; then the first resumes. The batch ends once, with
 * one output file — the second's — and the first's late writes are all refused: its commit is
 * fenced, its own blob is removed, and its renewal finds the lease gone and aborts the job.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BlobStore } from "../../src/blob/blob-store.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { finalizeOwned, type JobContext } from "../../src/dispatch/batch-jobs.js";
import { silentLogger } from "../../src/logger.js";
import { openRuntime, type Runtime } from "../../src/runtime.js";
import { getBatchById, insertBatch } from "../../src/store/batches.js";
import { seedPendingRequests, testBatch } from "../helpers/rows.js";
import { STORES, type TestDatabase } from "../helpers/stores.js";

const postgres = STORES.find((k) => k.name === "postgres");

/** A blob store whose puts wait at a gate; `entered` resolves when the first put arrives. */
function gated(inner: BlobStore) {
  let open = () => {};
  const gate = new Promise<void>((r) => {
    open = r;
  });
  let entered = () => {};
  const arrived = new Promise<void>((r) => {
    entered = r;
  });
  const keys: string[] = [];
  const store: BlobStore = {
    async put(key: string, body: Readable, options?: { signal?: AbortSignal }) {
      keys.push(key);
      entered();
      await gate;
      return inner.put(key, body, options);
    },
    get: (key, options) => inner.get(key, options),
    delete: (key) => inner.delete(key),
  };
  return { store, open, arrived, keys };
}

describe.runIf(postgres !== undefined)("batch lease lost mid-finalize (PostgreSQL, two workers)", () => {
  let db: TestDatabase;
  let dir: string;
  let runtime: Runtime;
  const batchId = "batch_takeover";

  beforeAll(async () => {
    db = await (postgres as NonNullable<typeof postgres>).createDatabase();
    dir = await mkdtemp(join(tmpdir(), "sluice-takeover-"));
    runtime = await openRuntime(
      { dataDir: dir, store: db.location, logLevel: "silent", limits: DEFAULT_LIMITS },
      { worker: false, logger: silentLogger },
    );
    const { store } = runtime.ctx;
    await insertBatch(
      store,
      testBatch(
        batchId,
        { status: "finalizing", end_status: "completed", total: 3, completed: 3 },
        { tenantId: "default", expiresAt: 2_000_000_000 },
      ),
    );
    await seedPendingRequests(store, batchId, 3);
    await store.db
      .updateTable("requests")
      .set({ status: "succeeded", response_status: 200, request_id: "r", result: '{"ok":true}', finished_ms: 1 })
      .where("batch_id", "=", batchId)
      .execute();
  });

  afterAll(async () => {
    await runtime?.close();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it("ends the batch once, with the new owner's file, and the first changes nothing", async () => {
    const { ctx } = runtime;
    const jobs = (owner: string, blobs: BlobStore, leaseMs: number): JobContext => ({
      ...ctx,
      blobs,
      owner,
      batchLeaseMs: leaseMs,
      signal: new AbortController().signal,
      outputFiles: true,
    });
    const gate = gated(ctx.blobs);
    // The first finalizer renews every 100 ms: once the lease is taken, its next renewal fails.
    const first = finalizeOwned(jobs("w-first", gate.store, 300), batchId);
    await gate.arrived;
    expect((await getBatchById(ctx.store, batchId))?.owner).toBe("w-first");

    // The first is stalled; its lease runs out (the clock moves past it) and the second takes over.
    await ctx.store.db.updateTable("batches").set({ owner_expires_ms: 0 }).where("id", "=", batchId).execute();
    await finalizeOwned(jobs("w-second", ctx.blobs, 60_000), batchId);
    const ended = await getBatchById(ctx.store, batchId);
    expect(ended).toMatchObject({ status: "completed", owner: null });
    const outputs = await ctx.store.db.selectFrom("files").selectAll().where("purpose", "=", "batch_output").execute();
    expect(outputs).toHaveLength(1);

    // The first wakes up: everything it still tries is refused.
    gate.open();
    await first;
    expect(await getBatchById(ctx.store, batchId)).toEqual(ended);
    const after = await ctx.store.db.selectFrom("files").selectAll().where("purpose", "=", "batch_output").execute();
    expect(after).toEqual(outputs);
    const output = outputs[0] as (typeof outputs)[number];
    expect(gate.keys).not.toContain(output.blob_key);
    // The first's own blob was removed; the second's is intact and complete.
    for (const key of gate.keys) await expect(ctx.blobs.get(key)).rejects.toMatchObject({ code: "blob_not_found" });
    const text = await new Response((await ctx.blobs.get(output.blob_key)) as unknown as ReadableStream).text();
    expect(text.trim().split("\n")).toHaveLength(3);
  });
});
