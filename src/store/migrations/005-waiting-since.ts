import type { Kysely } from "kysely";

/**
 * `batches.waiting_since`: since when (unix seconds) an in_progress batch has been waiting for an
 * engine that is away (the Batch object's `waiting_for_backend`), null while it runs normally.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("batches").addColumn("waiting_since", "bigint").execute();
}
