/** The retention query on every dialect: ended batches past output_expires_after, with rows left. */
import { describe, expect, it } from "vitest";
import { batchesWithExpiredResults, deleteBatchRequests, insertBatch } from "../../src/store/batches.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import { testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

describe.each(STORES)("result retention on $name", (kind) => {
  const t = useFreshStore(kind);

  it("finds ended batches whose results passed their retention, once", async () => {
    const add = async (id: string, status: string, endedAt: number | null, keep: number | null) => {
      await insertBatch(
        t.store,
        testBatch(
          id,
          {
            status,
            in_progress_at: 1,
            completed_at: status === "completed" ? endedAt : null,
            expired_at: status === "expired" ? endedAt : null,
            cancelled_at: status === "cancelled" ? endedAt : null,
            output_expires_seconds: keep,
            total: 1,
          },
          { createdAt: 1, expiresAt: 86_401 },
        ),
      );
      await insertRequestChunk(t.store, [
        {
          tenant_id: "t1",
          batch_id: id,
          line: 1,
          custom_id: "a",
          model: "m",
          body: "{}",
          status: "pending",
          prefix_key: null,
        },
      ]);
    };
    await add("b_completed", "completed", 100, 50);
    await add("b_expired", "expired", 100, 60);
    await add("b_cancelled", "cancelled", 100, 500);
    await add("b_forever", "completed", 100, null);
    await add("b_running", "in_progress", null, 10);
    const ids = async (now: number) => (await batchesWithExpiredResults(t.store, now, 100)).map((b) => b.id).sort();
    expect(await ids(149)).toEqual([]);
    expect(await ids(160)).toEqual(["b_completed", "b_expired"]);
    await deleteBatchRequests(t.store, "b_completed");
    expect(await ids(10_000)).toEqual(["b_cancelled", "b_expired"]);
  });
});
