/** Bulk insert of request rows during ingest; reports which rows collided on custom_id. */
import { type BatchLease, withinLease } from "../batch-lease.js";
import type { RequestInsertRow } from "../dialect.js";
import type { Store } from "../store.js";

export interface InsertOutcome {
  /**
   * Rows whose custom_id already existed in the batch, with the line that holds it (`customId` as
   * given: sealed when the caller sealed it).
   */
  duplicates: { line: number; customId: string; firstLine: number }[];
}

/**
 * Inserts one chunk of a batch's rows (all of one batch). Rows whose `(batch_id, custom_id_hash)`
 * is already taken, by an earlier chunk or an earlier row of this one, are skipped and reported.
 * The hash, not the id, is compared: sealed ids differ on every write.
 */
export async function insertRequestChunk(
  store: Store,
  input: readonly RequestInsertRow[],
  lease?: BatchLease,
): Promise<InsertOutcome> {
  if (input.length === 0) return { duplicates: [] };
  const rows = input.map((r) => (r.custom_id_hash === undefined ? { ...r, custom_id_hash: r.custom_id } : r));
  const insertedLines = await insertRows(store, rows, lease);
  if (insertedLines.length === rows.length) return { duplicates: [] };
  const got = new Set(insertedLines);
  const missing = rows.filter((r) => !got.has(r.line));
  const batchId = rows[0]?.batch_id ?? "";
  const hashOf = (r: RequestInsertRow) => r.custom_id_hash ?? r.custom_id;
  const holders = await store.db
    .selectFrom("requests")
    .select(["custom_id_hash", "line"])
    .where("batch_id", "=", batchId)
    .where("custom_id_hash", "in", missing.map(hashOf))
    .execute();
  const firstLine = new Map(holders.map((h) => [h.custom_id_hash, h.line]));
  return {
    duplicates: missing.map((r) => ({
      line: r.line,
      customId: r.custom_id,
      firstLine: firstLine.get(hashOf(r)) ?? 0,
    })),
  };
}

/** With `lease`, fenced: the rows go in only while the validation job holds the batch's lease. */
async function insertRows(store: Store, rows: readonly RequestInsertRow[], lease?: BatchLease): Promise<number[]> {
  if (store.caps.bulkInsertRequests !== undefined) return store.caps.bulkInsertRequests(rows, lease);
  if (lease !== undefined) return withinLease(store, lease, (tx) => insertRows(tx, rows));
  const inserted = await store.db
    .insertInto("requests")
    .values(rows as RequestInsertRow[])
    .onConflict((oc) => oc.columns(["batch_id", "custom_id_hash"]).doNothing())
    .returning("line")
    .execute();
  return inserted.map((r) => r.line);
}
