import { type Kysely, sql } from "kysely";

/**
 * Dedup within a batch (store/requests/dedup.ts):
 * - `requests.dedup_key`: the line's reuse key when the batch's dedup mode lets it merge with
 *   identical lines (set at ingest; null otherwise), so the merge pass never opens a body. Not
 *   indexed: an index in key order is written at random places, line after line (measured: it
 *   cut SQLite ingest to about half); the merge pass groups the batch's keys once instead.
 * - `dedup_groups`: the merge pass's working table, one row per key of a batch that more than one
 *   line asks (its first line leads, the others follow); emptied when the pass ends.
 * - a partial index on `(batch_id, dup_of)` over merged rows only: a leader's verdict finds the
 *   lines waiting for it. Written by the merge pass, never at ingest.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("requests").addColumn("dedup_key", "text").execute();
  await db.schema
    .createTable("dedup_groups")
    .addColumn("batch_id", "text", (c) => c.notNull())
    .addColumn("dedup_key", "text", (c) => c.notNull())
    .addColumn("leader", "integer", (c) => c.notNull())
    .addColumn("followers", "integer", (c) => c.notNull())
    .addPrimaryKeyConstraint("dedup_groups_pk", ["batch_id", "dedup_key"])
    .execute();
  await db.schema
    .createIndex("requests_merged")
    .on("requests")
    .columns(["batch_id", "dup_of"])
    .where(sql.ref("status"), "=", "merged")
    .execute();
}
