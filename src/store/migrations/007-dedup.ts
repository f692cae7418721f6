import { type Kysely, sql } from "kysely";

/**
 * Dedup within a batch (store/requests/dedup.ts):
 * - `requests.dedup_key`: the line's reuse key when the batch's dedup mode lets it merge with
 *   identical lines (set at ingest; null otherwise), so the merge pass never opens a body;
 * - a partial index on `(batch_id, dedup_key, line)` over those rows only: the merge pass walks
 *   it in key order (each key's lines together, its first line first), and a leader's verdict
 *   finds the lines merged with it. Rows that cannot merge (dedup off, sampling requests by
 *   default) cost the index nothing at ingest.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("requests").addColumn("dedup_key", "text").execute();
  await db.schema
    .createIndex("requests_dedup_key")
    .on("requests")
    .columns(["batch_id", "dedup_key", "line"])
    .where(sql.ref("dedup_key"), "is not", null)
    .execute();
}
