/**
 * Terminate: every unfinished row of a batch (pending, running under anyone's lease, or merged:
 * waiting for an identical line's answer, requests/dedup.ts) becomes `cancelled` or `expired` with
 * an error, and the batch's failed counter moves with them in the same transaction, fenced on the
 * batch's lease (the job doing it must still hold it). In-flight completions for those rows are
 * then fenced out by checkpoint.
 */
import { sql } from "kysely";
import { type BatchLease, withinLease } from "../batch-lease.js";
import type { Store } from "../store.js";

export async function terminateUnfinished(
  store: Store,
  lease: BatchLease,
  status: "cancelled" | "expired",
  error: { code: string; message: string },
  nowMs = Date.now(),
): Promise<number> {
  const { batchId } = lease;
  return withinLease(store, lease, async ({ db: trx }) => {
    const res = await trx
      .updateTable("requests")
      .set({ status, lease_owner: null, lease_expires_ms: null, error: JSON.stringify(error), finished_ms: nowMs })
      .where("batch_id", "=", batchId)
      .where("status", "in", ["pending", "running", "merged"])
      .executeTakeFirst();
    const n = Number(res.numUpdatedRows);
    if (n > 0) {
      await trx
        .updateTable("batches")
        .set({ failed: sql`failed + ${n}` })
        .where("id", "=", batchId)
        .execute();
    }
    return n;
  });
}
