/**
 * The checkpoint writes verdicts with one statement per chunk of up to 256 rows, compiled once per
 * row-count bucket (8, 16, … 256) and padded with rows that match nothing. Every group size must
 * write exactly its rows, fenced by the lease, and return the batch counters it moved.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { insertBatch } from "../../src/store/batches.js";
import { HELD_FENCE, leaseFence } from "../../src/store/claims/claim-source.js";
import { claimRequests } from "../../src/store/claims/leased-claim.js";
import { checkpoint, type Outcome } from "../../src/store/requests/checkpoint.js";
import { seedPendingRequests, testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const ROWS = 700;

describe.each(STORES)("checkpoint on $name", (kind) => {
  const fresh = useFreshStore(kind);
  let batchId = "";
  let n = 0;

  beforeEach(async () => {
    batchId = `batch_cp_${kind.name}_${n++}`;
    await insertBatch(
      fresh.store,
      testBatch(
        batchId,
        { status: "in_progress", total: ROWS },
        { tenantId: "default", createdAt: 1, expiresAt: 2_000_000_000 },
      ),
    );
    await seedPendingRequests(fresh.store, batchId, ROWS, (line) => `{"n":${line}}`);
  });

  const verdict = (line: number, ok: boolean): Outcome => ({
    kind: ok ? "succeeded" : "failed",
    batchId,
    line,
    responseStatus: ok ? 200 : 500,
    requestId: `req-${line}`,
    result: `{"line":${line}}`,
    error: null,
    usage: { inputTokens: 3, outputTokens: 2, cachedTokens: 1, reasoningTokens: 0 },
  });

  it("writes groups of any size (1, 9, 200, 300: padded buckets and two chunks) exactly", async () => {
    const claimed = await claimRequests(fresh.store, { batchId, owner: "w1", leaseMs: 60_000, limit: 510 });
    expect(claimed).toHaveLength(510);
    let next = 1;
    let completed = 0;
    let failed = 0;
    for (const size of [1, 9, 200, 300]) {
      const group = Array.from({ length: size }, (_, i) => verdict(next + i, (next + i) % 10 !== 0));
      next += size;
      const r = await checkpoint(fresh.store, leaseFence("w1"), group);
      completed += group.filter((o) => o.kind === "succeeded").length;
      failed += group.filter((o) => o.kind === "failed").length;
      expect(r.written).toBe(size);
      expect(r.progress).toEqual([
        { batchId, tenantId: "default", status: "in_progress", completed, failed, total: ROWS },
      ]);
    }
    const rows = await fresh.store.db
      .selectFrom("requests")
      .select(["line", "status", "result", "request_id", "output_tokens", "lease_owner"])
      .where("batch_id", "=", batchId)
      .orderBy("line")
      .execute();
    for (const row of rows) {
      if (row.line <= 510) {
        expect(row.status).toBe(row.line % 10 === 0 ? "failed" : "succeeded");
        expect(row.result).toBe(`{"line":${row.line}}`);
        expect(row.request_id).toBe(`req-${row.line}`);
        expect(Number(row.output_tokens)).toBe(2);
        expect(row.lease_owner).toBeNull();
      } else {
        expect(row.status).toBe("pending");
        expect(row.result).toBeNull();
      }
    }
    const batch = await fresh.store.db
      .selectFrom("batches")
      .select(["completed", "failed", "input_tokens", "output_tokens", "cached_tokens"])
      .where("id", "=", batchId)
      .executeTakeFirstOrThrow();
    expect(Number(batch.completed) + Number(batch.failed)).toBe(510);
    expect(Number(batch.input_tokens)).toBe(3 * 510);
    expect(Number(batch.output_tokens)).toBe(2 * 510);
    expect(Number(batch.cached_tokens)).toBe(510);
  });

  it("writes nothing for rows whose lease another worker holds, and counts only what it wrote", async () => {
    await claimRequests(fresh.store, { batchId, owner: "w1", leaseMs: 60_000, limit: 5 });
    await claimRequests(fresh.store, { batchId, owner: "w2", leaseMs: 60_000, limit: 5 });
    // w1 holds lines 1–5, w2 lines 6–10; w1 reports on 1–10 (as after losing 6–10 to w2).
    const r = await checkpoint(
      fresh.store,
      leaseFence("w1"),
      Array.from({ length: 10 }, (_, i) => verdict(i + 1, true)),
    );
    expect(r.written).toBe(5);
    expect(r.progress[0]?.completed).toBe(5);
    const running = await fresh.store.db
      .selectFrom("requests")
      .select("line")
      .where("batch_id", "=", batchId)
      .where("status", "=", "running")
      .orderBy("line")
      .execute();
    expect(running.map((x) => x.line)).toEqual([6, 7, 8, 9, 10]);
  });

  it("returns no progress when nothing was written: a row takes one verdict", async () => {
    await claimRequests(fresh.store, { batchId, owner: "w1", leaseMs: 60_000, limit: 1 });
    expect((await checkpoint(fresh.store, leaseFence("w1"), [verdict(1, true)])).written).toBe(1);
    expect(await checkpoint(fresh.store, leaseFence("w1"), [verdict(1, false)])).toEqual({ written: 0, progress: [] });
    // A pending row: under a lease fence a verdict needs the lease; under the held fence, pending is the claim.
    const unclaimed = await checkpoint(fresh.store, leaseFence("w1"), [verdict(2, true)]);
    expect(unclaimed.written).toBe(0);
    expect((await checkpoint(fresh.store, HELD_FENCE, [verdict(2, true)])).written).toBe(1);
    expect((await checkpoint(fresh.store, HELD_FENCE, [verdict(2, true)])).written).toBe(0);
  });

  it("waits for a transaction another caller holds open instead of joining it: that one's rollback keeps the verdicts", async () => {
    // SQLite checkpoints through the synchronous fast path on the one connection: had it run inside
    // the open Kysely transaction (as a savepoint), the rollback below would have taken it along.
    await claimRequests(fresh.store, { batchId, owner: "w1", leaseMs: 60_000, limit: 3 });
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    let entered = () => {};
    const inside = new Promise<void>((r) => {
      entered = r;
    });
    const rolledBack = fresh.store.db
      .transaction()
      .execute(async (trx) => {
        await trx.updateTable("batches").set({ metadata: '{"x":"1"}' }).where("id", "=", batchId).execute();
        entered();
        await held;
        throw new Error("rolled back");
      })
      .catch((err: Error) => err.message);
    await inside;
    const written = checkpoint(fresh.store, leaseFence("w1"), [verdict(1, true), verdict(2, false)]);
    // Time for a checkpoint that did not wait to run inside the open transaction (correct code waits).
    await new Promise((r) => setTimeout(r, 50));
    release();
    expect(await rolledBack).toBe("rolled back");
    expect((await written).written).toBe(2);
    const rows = await fresh.store.db
      .selectFrom("requests")
      .select(["line", "status"])
      .where("batch_id", "=", batchId)
      .where("line", "<=", 3)
      .orderBy("line")
      .execute();
    expect(rows.map((r) => r.status)).toEqual(["succeeded", "failed", "running"]);
    const batch = await fresh.store.db
      .selectFrom("batches")
      .select(["metadata", "completed", "failed"])
      .where("id", "=", batchId)
      .executeTakeFirstOrThrow();
    expect(batch.metadata).toBeNull();
    expect([Number(batch.completed), Number(batch.failed)]).toEqual([1, 1]);
  });
});
