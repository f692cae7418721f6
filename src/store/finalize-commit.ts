/**
 * Finalize's last step, in one transaction fenced on the batch's lease: the output and error file
 * rows are written and the batch moves from `fromStatus` to its end status. A finalizer that lost
 * its lease writes neither (LeaseLostError), so a batch ends once, with one set of files.
 */
import type { Updateable } from "kysely";
import { type BatchLease, LeaseLostError, withinLease } from "./batch-lease.js";
import type { BatchStatus } from "./batch-status.js";
import type { BatchTable, FileTable } from "./schema.js";
import type { Store } from "./store.js";

export interface FinalizedBatch {
  fromStatus: BatchStatus;
  endStatus: BatchStatus;
  /** The end status's timestamp, file ids, errors…: every column the end sets. */
  fields: Updateable<BatchTable>;
  files: Omit<FileTable, "line_count" | "token_estimate">[];
}

export async function commitFinalized(store: Store, lease: BatchLease, f: FinalizedBatch): Promise<void> {
  await withinLease(store, lease, async ({ db }) => {
    const moved = await db
      .updateTable("batches")
      .set({ ...f.fields, status: f.endStatus, owner: null, owner_expires_ms: null })
      .where("id", "=", lease.batchId)
      .where("status", "=", f.fromStatus)
      .where("owner", "=", lease.owner)
      .executeTakeFirst();
    // Someone moved the batch on (a cancel won the race): it is not ours to end.
    if (Number(moved.numUpdatedRows) === 0) throw new LeaseLostError(lease.batchId);
    for (const file of f.files) {
      await db
        .insertInto("files")
        .values({ ...file, line_count: null, token_estimate: null })
        .onConflict((oc) =>
          oc.column("id").doUpdateSet({ bytes: file.bytes, created_at: file.created_at, blob_key: file.blob_key }),
        )
        .execute();
    }
  });
}
