/** Lease upkeep: renew a worker's leases, and return expired leases' rows to pending. */
import { sql } from "kysely";
import type { Store } from "../store.js";

/**
 * Extends the leases `owner` holds; returns how many it renewed. Rows locked right now (being
 * checkpointed) are skipped on PostgreSQL: they are about to leave `running`, and waiting on
 * them from a multi-row UPDATE, in another order than the checkpoint's, deadlocked with it.
 */
export async function renewLeases(store: Store, owner: string, leaseMs: number, nowMs = Date.now()): Promise<number> {
  const res = await store.db
    .with(
      (cte) => cte("held").materialized(),
      (db) =>
        store.caps.lockForClaim(
          db
            .selectFrom("requests")
            .select(["batch_id", "line"])
            .where("status", "=", "running")
            .where("lease_owner", "=", owner),
        ),
    )
    .updateTable("requests")
    .set({ lease_expires_ms: nowMs + leaseMs })
    .where((eb) =>
      eb(
        eb.refTuple("batch_id", "line"),
        "in",
        eb.selectFrom("held").select(["held.batch_id", "held.line"]).$asTuple("batch_id", "line"),
      ),
    )
    .where("status", "=", "running")
    .where("lease_owner", "=", owner)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

/** Rows whose worker died or stalled go back to pending; their attempt still counts. */
export async function recoverExpiredLeases(store: Store, nowMs = Date.now()): Promise<number> {
  const res = await store.db
    .updateTable("requests")
    .set({ status: "pending", lease_owner: null, lease_expires_ms: null })
    .where("status", "=", sql.lit("running")) // literal: lets SQLite use the partial index
    .where("lease_expires_ms", "<", nowMs)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

/**
 * Hands leased rows back without a verdict (shutdown, never called): pending again, and the
 * attempt the claim counted is taken back. Fenced on the lease, like a verdict.
 */
export async function releaseLeased(
  store: Store,
  owner: string,
  rows: readonly { batchId: string; line: number }[],
): Promise<number> {
  if (rows.length === 0) return 0;
  return store.db.transaction().execute(async (trx) => {
    let released = 0;
    for (const r of rows) {
      const res = await trx
        .updateTable("requests")
        .set({ status: "pending", lease_owner: null, lease_expires_ms: null, attempts: sql`attempts - 1` })
        .where("batch_id", "=", r.batchId)
        .where("line", "=", r.line)
        .where("lease_owner", "=", owner)
        .where("status", "=", "running")
        .executeTakeFirst();
      released += Number(res.numUpdatedRows);
    }
    return released;
  });
}
