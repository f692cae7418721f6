/**
 * Backend health shared by the workers of one store (PostgreSQL deployments): a worker whose
 * circuit breaker opens or closes records it, and the others follow at their next look instead of
 * each spending calls to find out (dispatch/shared-health.ts).
 */
import type { BackendHealthTable } from "./schema.js";
import type { Store } from "./store.js";

export type BackendHealthRow = BackendHealthTable;

/** Every backend's row (one per replica URL any worker has reported on: a handful). */
export async function readBackendHealth(store: Store): Promise<BackendHealthRow[]> {
  const rows = await store.db.selectFrom("backend_health").selectAll().execute();
  return rows.map((r) => ({
    ...r,
    down_since_ms: r.down_since_ms === null ? null : Number(r.down_since_ms),
    updated_ms: Number(r.updated_ms),
  }));
}

/** Records that a backend went down (`down_since_ms` set) or came back (null). */
export async function writeBackendHealth(store: Store, row: BackendHealthRow): Promise<void> {
  await store.db
    .insertInto("backend_health")
    .values(row)
    .onConflict((oc) =>
      oc.column("backend").doUpdateSet({
        down_since_ms: row.down_since_ms,
        cause: row.cause,
        updated_ms: row.updated_ms,
        updated_by: row.updated_by,
      }),
    )
    .execute();
}
