import { type Kysely, SqliteAdapter, sql } from "kysely";

/**
 * custom_ids are sealed under the batch's data key (random nonce per value), so uniqueness within
 * a batch moves from `(batch_id, custom_id)` to `(batch_id, custom_id_hash)`, a keyed hash
 * (row-cipher.ts `customIdHash`; the id itself without a master key). Rows ingested before this
 * keep a NULL hash: they are past ingest, which restarts from an empty batch, so nothing checks
 * them again. No `down`: once ids are sealed, the old constraint cannot be rebuilt from them.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) {
    await db.transaction().execute(rebuildSqliteRequests);
  } else {
    await sql`ALTER TABLE requests ADD COLUMN custom_id_hash text`.execute(db);
    await sql`ALTER TABLE requests DROP CONSTRAINT requests_custom_id`.execute(db);
  }
  await db.schema
    .createIndex("requests_custom_id_hash")
    .on("requests")
    .columns(["batch_id", "custom_id_hash"])
    .unique()
    .execute();
}

const OLD_UNIQUE = /,\s*constraint\s+"requests_custom_id"\s+unique\s*\(\s*"batch_id"\s*,\s*"custom_id"\s*\)/i;

/**
 * SQLite cannot drop a table constraint: the table is rebuilt (the documented 12-step ALTER) from
 * its own stored definition minus that constraint, so columns and indexes added by any migration
 * carry over unchanged.
 */
async function rebuildSqliteRequests(trx: Kysely<unknown>): Promise<void> {
  const master = (type: string) =>
    sql<{ sql: string }>`SELECT sql FROM sqlite_master
      WHERE type = ${type} AND tbl_name = 'requests' AND sql IS NOT NULL`.execute(trx);
  const table = (await master("table")).rows[0]?.sql;
  if (table === undefined || !OLD_UNIQUE.test(table)) {
    throw new Error("004-custom-id-hash: requests has no (batch_id, custom_id) constraint to replace");
  }
  const indexes = (await master("index")).rows.map((r) => r.sql);
  const columns = (await sql<{ name: string }>`PRAGMA table_info(requests)`.execute(trx)).rows
    .map((c) => `"${c.name}"`)
    .join(", ");
  const create = table.replace(OLD_UNIQUE, "").replace(/^create table\s+"?requests"?/i, 'CREATE TABLE "requests_004"');
  await sql.raw(create).execute(trx);
  await sql.raw(`INSERT INTO "requests_004" (${columns}) SELECT ${columns} FROM "requests"`).execute(trx);
  await sql`DROP TABLE requests`.execute(trx);
  await sql`ALTER TABLE requests_004 RENAME TO requests`.execute(trx);
  for (const index of indexes) await sql.raw(index).execute(trx);
  await sql`ALTER TABLE requests ADD COLUMN custom_id_hash text`.execute(trx);
}
