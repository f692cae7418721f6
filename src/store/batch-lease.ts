/**
 * Batch-level leases: one worker at a time runs a batch's jobs (validate, finalize, cancel,
 * expire). The lease is the batch row's `owner` + `owner_expires_ms`; a worker takes it when it
 * is free or expired, renews it while a job runs, and clears it at the end.
 *
 * Every write a job makes is fenced on the lease: it runs in a transaction that first confirms
 * `owner = me` on the batch row (on PostgreSQL that also locks the row, so a taker waits for the
 * transaction and then sees its result). A job whose lease another worker took fails that check
 * with `LeaseLostError` and writes nothing: a paused or partitioned worker that wakes up late can
 * never delete rows, insert rows or move the batch under the new owner.
 */
import { SluiceError } from "../errors.js";
import { inTransaction, type Store } from "./store.js";

/** A job's hold on a batch. */
export interface BatchLease {
  readonly batchId: string;
  readonly owner: string;
}

/** The batch's lease is held by another worker now: the job must stop, having changed nothing. */
export class LeaseLostError extends SluiceError {
  constructor(batchId: string, cause?: unknown) {
    super("batch_lease_lost", `The lease on batch '${batchId}' was lost; another worker continues its job.`, {
      cause,
    });
  }
}

/** Takes the lease when it is free, expired, or already ours, and the batch is in `status`. */
export async function acquireBatchLease(
  store: Store,
  lease: BatchLease,
  status: string,
  leaseMs: number,
  nowMs = Date.now(),
): Promise<boolean> {
  const res = await store.db
    .updateTable("batches")
    .set({ owner: lease.owner, owner_expires_ms: nowMs + leaseMs })
    .where("id", "=", lease.batchId)
    .where("status", "=", status)
    .where((eb) => eb.or([eb("owner", "is", null), eb("owner_expires_ms", "<", nowMs), eb("owner", "=", lease.owner)]))
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Extends a lease we still hold (whatever the batch's status); false when it is not ours any more. */
export async function renewBatchLease(
  store: Store,
  lease: BatchLease,
  leaseMs: number,
  nowMs = Date.now(),
): Promise<boolean> {
  const res = await store.db
    .updateTable("batches")
    .set({ owner_expires_ms: nowMs + leaseMs })
    .where("id", "=", lease.batchId)
    .where("owner", "=", lease.owner)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Clears the lease if it is still ours (a no-op when the job already cleared it). */
export async function releaseBatchLease(store: Store, lease: BatchLease): Promise<void> {
  await store.db
    .updateTable("batches")
    .set({ owner: null, owner_expires_ms: null })
    .where("id", "=", lease.batchId)
    .where("owner", "=", lease.owner)
    .execute();
}

/**
 * Runs `work` in one transaction after confirming (and on PostgreSQL locking) the lease: its
 * writes commit only while the lease is ours. Throws `LeaseLostError` otherwise.
 */
export async function withinLease<T>(store: Store, lease: BatchLease, work: (tx: Store) => Promise<T>): Promise<T> {
  return inTransaction(store, async (tx) => {
    const res = await tx.db
      .updateTable("batches")
      .set({ owner: lease.owner })
      .where("id", "=", lease.batchId)
      .where("owner", "=", lease.owner)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new LeaseLostError(lease.batchId);
    return work(tx);
  });
}
