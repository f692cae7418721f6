import { describe, expect, it } from "vitest";
import {
  acquireBatchOwnership,
  type BatchRow,
  batchesInStatus,
  deleteBatchRequests,
  getBatch,
  insertBatch,
  listBatches,
  releaseBatchOwnership,
  transitionBatch,
} from "../../src/store/batches.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
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
    expect(await acquireBatchOwnership(t.store, "batch_o", "validating", "w1", 1000, now)).toBe(true);
    expect(await acquireBatchOwnership(t.store, "batch_o", "validating", "w2", 1000, now + 10)).toBe(false);
    expect(await acquireBatchOwnership(t.store, "batch_o", "validating", "w1", 1000, now + 10)).toBe(true);
    expect(await acquireBatchOwnership(t.store, "batch_o", "finalizing", "w2", 1000, now + 5000)).toBe(false);
    expect(await acquireBatchOwnership(t.store, "batch_o", "validating", "w2", 1000, now + 5000)).toBe(true);
    await releaseBatchOwnership(t.store, "batch_o", "w1"); // not the owner: no effect
    expect((await getBatch(t.store, "t1", "batch_o"))?.owner).toBe("w2");
    await releaseBatchOwnership(t.store, "batch_o", "w2");
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
});
