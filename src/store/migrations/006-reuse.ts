import { type Kysely, sql } from "kysely";

/**
 * Never pay twice (reuse across batches, dedup within one):
 * - `requests.reuse_key` / `resubmit_key`: keyed hashes of what determines a line's answer
 *   (batch/request-key.ts), under the tenant's reuse key; indexed per tenant over succeeded rows
 *   only (what the lookups look for: an index every ingested row entered cost ingest 5x);
 * - `requests.reused_from`: the batch whose result a line took instead of a call;
 * - `requests.dup_of`: the line (same batch) whose answer a merged line waits for, and
 *   `dup_count` on that leader: how many lines wait for it;
 * - `batches.reuse_mode`, `dedup_mode`: the batch's choices; `reused`, `merged`: its counts.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("requests").addColumn("reuse_key", "text").execute();
  await db.schema.alterTable("requests").addColumn("resubmit_key", "text").execute();
  await db.schema.alterTable("requests").addColumn("reused_from", "text").execute();
  await db.schema.alterTable("requests").addColumn("dup_of", "integer").execute();
  await db.schema
    .alterTable("requests")
    .addColumn("dup_count", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  // Over succeeded rows only: reuse looks up finished results, and an index every ingested row
  // entered (random keys) cut ingest from ~55k to ~10k lines/s; a row enters it when it succeeds.
  await db.schema
    .createIndex("requests_reuse_key")
    .on("requests")
    .columns(["tenant_id", "reuse_key"])
    .where(sql.ref("status"), "=", "succeeded")
    .execute();
  await db.schema
    .createIndex("requests_resubmit_key")
    .on("requests")
    .columns(["tenant_id", "resubmit_key"])
    .where(sql.ref("status"), "=", "succeeded")
    .execute();
  await db.schema
    .alterTable("batches")
    .addColumn("reuse_mode", "text", (c) => c.notNull().defaultTo("custom_id+body"))
    .execute();
  await db.schema
    .alterTable("batches")
    .addColumn("dedup_mode", "text", (c) => c.notNull().defaultTo("deterministic"))
    .execute();
  await db.schema
    .alterTable("batches")
    .addColumn("reused", "bigint", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .alterTable("batches")
    .addColumn("merged", "bigint", (c) => c.notNull().defaultTo(0))
    .execute();
}
