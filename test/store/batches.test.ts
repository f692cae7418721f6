import { describe, expect, it } from "vitest";
import { acquireBatchLease, LeaseLostError, releaseBatchLease, renewBatchLease } from "../../src/store/batch-lease.js";
import {
  type BatchRow,
  batchesInStatus,
  clearBatchRequests,
  deleteBatchRequests,
  getBatch,
  insertBatch,
  listBatches,
  transitionBatch,
} from "../../src/store/batches.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import { terminateUnfinished } from "../../src/store/requests/terminate.js";
import { testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const batch = (id: string, o: Partial<BatchRow> = {}): BatchRow => testBatch(id, o);

describe.each(STORES)("batches on $name", (kind) => {
  const t = useFreshStore(kind);

  it("inserts and reads a batch, scoped by tenant, with bigint counters as numbers", async () => {
    const row = batch("batch_a", { input_tokens: 2 ** 45, metadata: '{"k":"v"}' });
    await insertBatch(t.store, row);
    const got = await getBatch(t.store, "t1", "batch_a");
    expect(got).toEqual(row);
    expect(typeof got?.input_tokens).toBe("number");
    expect(await getBatch(t.store, "t2", "batch_a")).toBeUndefined();
  });

  it("lists newest first with keyset pagination", async () => {
    for (const [id, at] of [
      ["batch_l1", 1],
      ["batch_l2", 2],
      ["batch_l3", 2],
      ["batch_l4", 3],
    ] as const) {
      await insertBatch(t.store, batch(id, { tenant_id: "tl", created_at: at }));
    }
    const first = await listBatches(t.store, { tenantId: "tl", limit: 3 });
    expect(first.map((b) => b.id)).toEqual(["batch_l4", "batch_l3", "batch_l2"]);
    const second = await listBatches(t.store, { tenantId: "tl", limit: 3, after: "batch_l2" });
    expect(second.map((b) => b.id)).toEqual(["batch_l1"]);
  });

  it("transitions only from an expected status, setting fields", async () => {
    await insertBatch(t.store, batch("batch_t"));
    expect(await transitionBatch(t.store, "batch_t", ["in_progress"], "finalizing")).toBe(false);
    expect(
      await transitionBatch(t.store, "batch_t", ["validating"], "in_progress", { in_progress_at: 5, total: 9 }),
    ).toBe(true);
    const got = await getBatch(t.store, "t1", "batch_t");
    expect(got).toMatchObject({ status: "in_progress", in_progress_at: 5, total: 9 });
    expect(await transitionBatch(t.store, "batch_t", ["validating"], "in_progress")).toBe(false);
    const inProgress = await batchesInStatus(t.store, ["in_progress"]);
    expect(inProgress.map((b) => b.id)).toContain("batch_t");
  });

  it("hands the batch lease to one owner at a time until it expires", async () => {
    await insertBatch(t.store, batch("batch_o"));
    const now = 1_000_000;
    const w1 = { batchId: "batch_o", owner: "w1" };
    const w2 = { batchId: "batch_o", owner: "w2" };
    expect(await acquireBatchLease(t.store, w1, "validating", 1000, now)).toBe(true);
    expect(await acquireBatchLease(t.store, w2, "validating", 1000, now + 10)).toBe(false);
    expect(await acquireBatchLease(t.store, w1, "validating", 1000, now + 10)).toBe(true);
    expect(await acquireBatchLease(t.store, w2, "finalizing", 1000, now + 5000)).toBe(false);
    expect(await acquireBatchLease(t.store, w2, "validating", 1000, now + 5000)).toBe(true);
    expect(await renewBatchLease(t.store, w1, 1000, now + 5000)).toBe(false); // taken: w1 must stop
    await releaseBatchLease(t.store, w1); // not the owner: no effect
    expect((await getBatch(t.store, "t1", "batch_o"))?.owner).toBe("w2");
    await releaseBatchLease(t.store, w2);
    expect(await getBatch(t.store, "t1", "batch_o")).toMatchObject({ owner: null, owner_expires_ms: null });
  });

  it("deletes a batch's request rows", async () => {
    await insertBatch(t.store, batch("batch_d"));
    await insertRequestChunk(t.store, [
      {
        tenant_id: "t1",
        batch_id: "batch_d",
        line: 1,
        custom_id: "a",
        model: "m",
        body: "{}",
        status: "pending",
        prefix_key: null,
      },
    ]);
    await deleteBatchRequests(t.store, "batch_d");
    const left = await t.store.db.selectFrom("requests").select("line").where("batch_id", "=", "batch_d").execute();
    expect(left).toEqual([]);
  });

  it("refuses every lease-fenced write of a worker whose lease another took, and writes nothing", async () => {
    await insertBatch(t.store, batch("batch_f"));
    const row = (line: number) => ({
      tenant_id: "t1",
      batch_id: "batch_f",
      line,
      custom_id: `c${line}`,
      model: "m",
      body: "{}",
      status: "pending" as const,
      prefix_key: null,
    });
    const w1 = { batchId: "batch_f", owner: "w1" };
    const w2 = { batchId: "batch_f", owner: "w2" };
    expect(await acquireBatchLease(t.store, w1, "validating", 1000, 1_000)).toBe(true);
    await insertRequestChunk(t.store, [row(1)], w1);
    // w1 pauses past its lease; w2 takes over.
    expect(await acquireBatchLease(t.store, w2, "validating", 60_000, 5_000)).toBe(true);
    await expect(insertRequestChunk(t.store, [row(2)], w1)).rejects.toBeInstanceOf(LeaseLostError);
    await expect(clearBatchRequests(t.store, w1)).rejects.toBeInstanceOf(LeaseLostError);
    await expect(
      terminateUnfinished(t.store, w1, "cancelled", { code: "batch_cancelled", message: "x" }),
    ).rejects.toBeInstanceOf(LeaseLostError);
    expect(await transitionBatch(t.store, "batch_f", ["validating"], "in_progress", {}, "w1")).toBe(false);
    const rows = await t.store.db
      .selectFrom("requests")
      .select(["line", "status"])
      .where("batch_id", "=", "batch_f")
      .execute();
    expect(rows).toEqual([{ line: 1, status: "pending" }]);
    expect((await getBatch(t.store, "t1", "batch_f"))?.status).toBe("validating");
    // The new owner's writes go through.
    await insertRequestChunk(t.store, [row(2)], w2);
    expect(await transitionBatch(t.store, "batch_f", ["validating"], "in_progress", {}, "w2")).toBe(true);
  });
});
