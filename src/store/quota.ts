/**
 * The one transaction in which a batch is admitted against its tenant's quota
 * (src/tenancy/batch-quota.ts decides; this reads the load and inserts).
 */
import { sql } from "kysely";
import type { BatchStatus } from "./batch-status.js";
import type { NewBatchRow } from "./batches.js";
import type { Store } from "./store.js";

const UNFINISHED: readonly BatchStatus[] = ["validating", "in_progress", "finalizing", "cancelling"];

/** What a tenant's unfinished batches hold. */
export interface UnfinishedLoad {
  batches: number;
  /** Sum of their estimated input tokens. */
  tokens: number;
}

/**
 * Inserts the batch unless `admit` throws, given the load of the tenant's unfinished batches. The
 * transaction first writes the tenant's row (a no-op update): that locks the row (PostgreSQL) or the
 * database (SQLite) until commit, which serializes concurrent creations for one tenant.
 */
export async function insertBatchIfAdmitted(
  store: Store,
  row: NewBatchRow,
  admit: (load: UnfinishedLoad) => void,
): Promise<void> {
  await store.db.transaction().execute(async (trx) => {
    await trx.updateTable("tenants").set({ name: sql`name` }).where("id", "=", row.tenant_id).execute();
    const active = await trx
      .selectFrom("batches")
      .select((eb) => [eb.fn.countAll<number>().as("n"), eb.fn.sum<number | null>("token_estimate").as("tokens")])
      .where("tenant_id", "=", row.tenant_id)
      .where("status", "in", UNFINISHED)
      .executeTakeFirstOrThrow();
    admit({ batches: Number(active.n), tokens: Number(active.tokens ?? 0) });
    await trx
      .insertInto("batches")
      .values({ ...row, token_estimate: row.token_estimate ?? 0 })
      .execute();
  });
}
