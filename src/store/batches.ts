/** Batch rows: creation, reads, listing and compare-and-set status transitions. Tenant-scoped. */
import { sql, type Updateable } from "kysely";
import { type BatchLease, withinLease } from "./batch-lease.js";
import type { BatchStatus } from "./batch-status.js";
import type { BatchTable } from "./schema.js";
import type { Store } from "./store.js";

export type BatchRow = BatchTable;
export type NewBatchRow = Omit<BatchRow, "token_estimate"> & { token_estimate?: number };

/** The identity of a new batch; every other column starts empty (no timestamps, zero counters). */
export type NewBatch = Pick<
  BatchRow,
  "id" | "tenant_id" | "endpoint" | "input_file_id" | "completion_window" | "created_at" | "expires_at"
>;

/** A fresh `validating` batch row: one place for the defaults of every column. */
export function newBatchRow(identity: NewBatch, overrides: Partial<BatchRow> = {}): BatchRow {
  return {
    ...identity,
    status: "validating",
    in_progress_at: null,
    finalizing_at: null,
    completed_at: null,
    failed_at: null,
    expired_at: null,
    cancelling_at: null,
    cancelled_at: null,
    output_file_id: null,
    error_file_id: null,
    errors: null,
    metadata: null,
    output_expires_seconds: null,
    model: null,
    total: 0,
    completed: 0,
    failed: 0,
    input_tokens: 0,
    cached_tokens: 0,
    output_tokens: 0,
    reasoning_tokens: 0,
    end_status: null,
    owner: null,
    owner_expires_ms: null,
    token_estimate: 0,
    waiting_since: null,
    reuse_mode: "custom_id+body",
    dedup_mode: "deterministic",
    reused: 0,
    merged: 0,
    ...overrides,
  };
}

export async function insertBatch(store: Store, row: NewBatchRow): Promise<void> {
  await store.db
    .insertInto("batches")
    .values({ ...row, token_estimate: row.token_estimate ?? 0 })
    .execute();
}

export async function getBatch(store: Store, tenantId: string, id: string): Promise<BatchRow | undefined> {
  return store.db
    .selectFrom("batches")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("id", "=", id)
    .executeTakeFirst();
}

/** Newest first, keyset-paginated by (created_at, id) like OpenAI's `after`. */
export async function listBatches(
  store: Store,
  q: { tenantId: string; limit: number; after?: string | undefined },
): Promise<BatchRow[]> {
  let query = store.db.selectFrom("batches").selectAll().where("tenant_id", "=", q.tenantId);
  if (q.after !== undefined) {
    const cursor = await getBatch(store, q.tenantId, q.after);
    if (cursor !== undefined) {
      query = query.where((eb) =>
        eb.or([
          eb("created_at", "<", cursor.created_at),
          eb.and([eb("created_at", "=", cursor.created_at), eb("id", "<", cursor.id)]),
        ]),
      );
    }
  }
  return query.orderBy("created_at", "desc").orderBy("id", "desc").limit(q.limit).execute();
}

/** A batch by id, whatever its tenant (workers only). */
export async function getBatchById(store: Store, id: string): Promise<BatchRow | undefined> {
  return store.db.selectFrom("batches").selectAll().where("id", "=", id).executeTakeFirst();
}

/**
 * Moves a batch from one of `from` to `to` atomically, setting `fields` too. Returns false when the
 * batch was not in one of `from` (someone else moved it first), or, with `owner`, when that worker
 * no longer holds the batch's lease: callers treat either as a lost race.
 */
export async function transitionBatch(
  store: Store,
  id: string,
  from: readonly BatchStatus[],
  to: BatchStatus,
  fields: Updateable<BatchTable> = {},
  owner?: string,
): Promise<boolean> {
  let q = store.db
    .updateTable("batches")
    .set({ ...fields, status: to })
    .where("id", "=", id)
    .where("status", "in", from);
  if (owner !== undefined) q = q.where("owner", "=", owner);
  const res = await q.executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Sets the counted total of a batch whose lease `owner` holds (validation that lost its race). */
export async function setBatchTotal(store: Store, id: string, total: number, owner: string): Promise<void> {
  await store.db.updateTable("batches").set({ total }).where("id", "=", id).where("owner", "=", owner).execute();
}

/** Batch ids in the given statuses, oldest first (used by workers; not tenant-scoped on purpose). */
export async function batchesInStatus(
  store: Store,
  statuses: readonly BatchStatus[],
  limit = 1000,
): Promise<
  Pick<
    BatchRow,
    "id" | "tenant_id" | "status" | "endpoint" | "model" | "created_at" | "expires_at" | "owner" | "owner_expires_ms"
  >[]
> {
  return store.db
    .selectFrom("batches")
    .select(["id", "tenant_id", "status", "endpoint", "model", "created_at", "expires_at", "owner", "owner_expires_ms"])
    .where("status", "in", statuses)
    .orderBy("created_at", "asc")
    .limit(limit)
    .execute();
}

/**
 * Deletes every request row of a batch being validated, and the counts of lines answered at
 * validation (the reuse pass: `completed`, `reused`), in a transaction fenced on its lease.
 */
export async function clearBatchRequests(store: Store, lease: BatchLease): Promise<void> {
  await withinLease(store, lease, async (tx) => {
    await tx.db.deleteFrom("requests").where("batch_id", "=", lease.batchId).execute();
    // A merge pass cut short (requests/dedup.ts) leaves its working rows: they go with the rows.
    await tx.db.deleteFrom("dedup_groups").where("batch_id", "=", lease.batchId).execute();
    await tx.db
      .updateTable("batches")
      .set({ completed: 0, reused: 0, merged: 0 })
      .where("id", "=", lease.batchId)
      .execute();
  });
}

/** Deletes the request rows of an ended batch (results past their retention). */
export async function deleteBatchRequests(store: Store, batchId: string): Promise<void> {
  await store.db.deleteFrom("requests").where("batch_id", "=", batchId).execute();
}

/** Deletes an ended batch and its request rows in one transaction; false when not found or not ended. */
export async function deleteEndedBatch(
  store: Store,
  tenantId: string,
  id: string,
  ended: readonly BatchStatus[],
): Promise<boolean> {
  return store.db.transaction().execute(async (trx) => {
    const res = await trx
      .deleteFrom("batches")
      .where("tenant_id", "=", tenantId)
      .where("id", "=", id)
      .where("status", "in", ended)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) return false;
    await trx.deleteFrom("requests").where("batch_id", "=", id).execute();
    await trx.deleteFrom("dedup_groups").where("batch_id", "=", id).execute();
    return true;
  });
}

/**
 * Ended batches whose results are past their retention (`output_expires_after`, counted from
 * when the batch ended, like their output files) and still have request rows.
 */
export async function batchesWithExpiredResults(
  store: Store,
  nowSeconds: number,
  limit: number,
): Promise<Pick<BatchRow, "id" | "tenant_id">[]> {
  return store.db
    .selectFrom("batches")
    .select(["id", "tenant_id"])
    .where("output_expires_seconds", "is not", null)
    .where("status", "in", ["completed", "expired", "cancelled"])
    .where(sql<number>`coalesce(completed_at, expired_at, cancelled_at) + output_expires_seconds`, "<=", nowSeconds)
    .where((eb) => eb.exists(eb.selectFrom("requests").select("line").whereRef("requests.batch_id", "=", "batches.id")))
    .limit(limit)
    .execute();
}
