import { type Kysely, sql } from "kysely";

// Migrations take Kysely<unknown>: they must not depend on today's table types.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("tenants")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("api_keys")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.notNull().references("tenants.id"))
    .addColumn("key_hash", "text", (c) => c.notNull().unique())
    .addColumn("prefix", "text", (c) => c.notNull())
    .addColumn("admin", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("revoked_at", "bigint")
    .execute();

  await db.schema
    .createTable("files")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("purpose", "text", (c) => c.notNull())
    .addColumn("filename", "text", (c) => c.notNull())
    .addColumn("bytes", "bigint", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint")
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("blob_key", "text", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("files_tenant_created").on("files").columns(["tenant_id", "created_at", "id"]).execute();

  await db.schema
    .createTable("batches")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("endpoint", "text", (c) => c.notNull())
    .addColumn("input_file_id", "text", (c) => c.notNull())
    .addColumn("completion_window", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("in_progress_at", "bigint")
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("finalizing_at", "bigint")
    .addColumn("completed_at", "bigint")
    .addColumn("failed_at", "bigint")
    .addColumn("expired_at", "bigint")
    .addColumn("cancelling_at", "bigint")
    .addColumn("cancelled_at", "bigint")
    .addColumn("output_file_id", "text")
    .addColumn("error_file_id", "text")
    .addColumn("errors", "text")
    .addColumn("metadata", "text")
    .addColumn("output_expires_seconds", "bigint")
    .addColumn("model", "text")
    .addColumn("total", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("completed", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("failed", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("input_tokens", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("cached_tokens", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("output_tokens", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("reasoning_tokens", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("end_status", "text")
    .addColumn("owner", "text")
    .addColumn("owner_expires_ms", "bigint")
    .execute();
  await db.schema
    .createIndex("batches_tenant_created")
    .on("batches")
    .columns(["tenant_id", "created_at", "id"])
    .execute();
  await db.schema.createIndex("batches_status").on("batches").column("status").execute();

  await db.schema
    .createTable("requests")
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("batch_id", "text", (c) => c.notNull())
    .addColumn("line", "integer", (c) => c.notNull())
    .addColumn("custom_id", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("body", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull().defaultTo("pending"))
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("next_attempt_ms", "bigint", (c) => c.notNull().defaultTo(0))
    .addColumn("lease_owner", "text")
    .addColumn("lease_expires_ms", "bigint")
    .addColumn("response_status", "integer")
    .addColumn("request_id", "text")
    .addColumn("result", "text")
    .addColumn("error", "text")
    .addColumn("input_tokens", "bigint")
    .addColumn("cached_tokens", "bigint")
    .addColumn("output_tokens", "bigint")
    .addColumn("reasoning_tokens", "bigint")
    .addColumn("finished_ms", "bigint")
    .addColumn("prefix_key", "text")
    .addPrimaryKeyConstraint("requests_pk", ["batch_id", "line"])
    .addUniqueConstraint("requests_custom_id", ["batch_id", "custom_id"])
    .execute();
  // Claims scan only pending rows: a partial index keeps that scan small as the batch drains.
  await db.schema
    .createIndex("requests_pending")
    .on("requests")
    .columns(["batch_id", "line"])
    .where(sql.ref("status"), "=", "pending")
    .execute();
  await db.schema
    .createIndex("requests_running")
    .on("requests")
    .columns(["lease_expires_ms"])
    .where(sql.ref("status"), "=", "running")
    .execute();

  await db.schema
    .createTable("audit_log")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("tenant_id", "text", (c) => c.notNull())
    .addColumn("key_id", "text")
    .addColumn("action", "text", (c) => c.notNull())
    .addColumn("target", "text")
    .addColumn("at", "bigint", (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ["audit_log", "requests", "batches", "files", "api_keys", "tenants"]) {
    await db.schema.dropTable(t).ifExists().execute();
  }
}
