import type { Kysely } from "kysely";

/**
 * Engines that are away:
 * - `batches.waiting_since`: since when (unix seconds) an in_progress batch has been waiting for
 *   an engine (the Batch object's `waiting_for_backend`), null while it runs normally;
 * - `backend_health`: what the workers sharing a store know of each backend replica (by a hash of
 *   its URL): down since when and why, or up (`down_since_ms` null), and who said so last.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("batches").addColumn("waiting_since", "bigint").execute();
  await db.schema
    .createTable("backend_health")
    .addColumn("backend", "text", (c) => c.primaryKey())
    .addColumn("down_since_ms", "bigint")
    .addColumn("cause", "text", (c) => c.notNull())
    .addColumn("updated_ms", "bigint", (c) => c.notNull())
    .addColumn("updated_by", "text", (c) => c.notNull())
    .execute();
}
