import type { Kysely } from "kysely";

/**
 * Tenancy and encryption at rest: wrapped data keys (one per file and per batch), per-tenant
 * limit overrides, upload statistics used by the limits, and the enqueued-token estimate of each
 * batch. SQLite adds one column per ALTER TABLE, so each column is its own statement.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("data_keys")
    // The id of the file or batch whose data the key encrypts.
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("master_key_id", "text", (c) => c.notNull())
    .addColumn("wrapped", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();

  for (const column of ["max_file_bytes", "max_batch_lines", "max_concurrent_batches", "max_enqueued_tokens"]) {
    await db.schema.alterTable("tenants").addColumn(column, "bigint").execute();
  }
  await db.schema.alterTable("files").addColumn("line_count", "bigint").execute();
  await db.schema.alterTable("files").addColumn("token_estimate", "bigint").execute();
  await db.schema
    .alterTable("batches")
    .addColumn("token_estimate", "bigint", (c) => c.notNull().defaultTo(0))
    .execute();

  await db.schema.createIndex("audit_log_tenant_at").on("audit_log").columns(["tenant_id", "at", "id"]).execute();
  await db.schema.createIndex("api_keys_tenant").on("api_keys").column("tenant_id").execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex("api_keys_tenant").ifExists().execute();
  await db.schema.dropIndex("audit_log_tenant_at").ifExists().execute();
  await db.schema.alterTable("batches").dropColumn("token_estimate").execute();
  await db.schema.alterTable("files").dropColumn("token_estimate").execute();
  await db.schema.alterTable("files").dropColumn("line_count").execute();
  for (const column of ["max_enqueued_tokens", "max_concurrent_batches", "max_batch_lines", "max_file_bytes"]) {
    await db.schema.alterTable("tenants").dropColumn(column).execute();
  }
  await db.schema.dropTable("data_keys").ifExists().execute();
}
