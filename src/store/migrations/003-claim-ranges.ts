import type { Kysely } from "kysely";

/**
 * The journal of in-memory claims (SQLite, claim-ranges.ts): one row per read of claimable rows,
 * with the lines it took, kept until each of them has its outcome committed.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("claim_ranges")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("batch_id", "text", (c) => c.notNull())
    .addColumn("owner", "text", (c) => c.notNull())
    // The lines taken, comma-separated, ascending.
    .addColumn("lines", "text", (c) => c.notNull())
    .addColumn("created_ms", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("claim_ranges_batch").on("claim_ranges").column("batch_id").execute();
}
