/** Lease upkeep: renew a worker's leases, and return expired leases' rows to pending. */
import type { Store } from "../store.js";

/** Extends every lease `owner` holds; returns how many rows it still holds. */
export async function renewLeases(store: Store, owner: string, leaseMs: number, nowMs = Date.now()): Promise<number> {
  const res = await store.db
    .updateTable("requests")
    .set({ lease_expires_ms: nowMs + leaseMs })
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
    .where("status", "=", "running")
    .where("lease_expires_ms", "<", nowMs)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}
