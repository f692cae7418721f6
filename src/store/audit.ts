/** The audit log: who (tenant, key id: never the key) did what to which object, and when. */
import { randomToken } from "../ids.js";
import type { AuditTable } from "./schema.js";
import type { Store } from "./store.js";
import { nowSeconds } from "./tenants.js";

export type AuditAction =
  | "key.create"
  | "key.revoke"
  | "tenant.limits"
  | "batch.create"
  | "batch.cancel"
  | "batch.delete"
  /** A retry batch created (target: the new batch; the log line `batch retry` names the one it retries). */
  | "batch.retry"
  | "batch.output.read"
  | "file.download"
  | "file.delete"
  | "file.expire";

export interface AuditEntry {
  tenantId: string;
  /** The acting key; null for SLUICE_API_KEY, the CLI and the server itself. */
  keyId: string | null;
  action: AuditAction;
  target: string | null;
}

export async function recordAudit(store: Store, e: AuditEntry): Promise<void> {
  await store.db
    .insertInto("audit_log")
    .values({
      id: `aud_${randomToken(20)}`,
      tenant_id: e.tenantId,
      key_id: e.keyId,
      action: e.action,
      target: e.target,
      at: nowSeconds(),
    })
    .execute();
}

/** Newest first, keyset-paginated on (at, id). */
export async function listAudit(
  store: Store,
  q: { tenantId?: string | undefined; limit: number; after?: string | undefined },
): Promise<AuditTable[]> {
  let query = store.db.selectFrom("audit_log").selectAll();
  if (q.tenantId !== undefined) query = query.where("tenant_id", "=", q.tenantId);
  if (q.after !== undefined) {
    const cursor = await store.db.selectFrom("audit_log").selectAll().where("id", "=", q.after).executeTakeFirst();
    if (cursor !== undefined) {
      query = query.where((eb) =>
        eb.or([eb("at", "<", cursor.at), eb.and([eb("at", "=", cursor.at), eb("id", "<", cursor.id)])]),
      );
    }
  }
  return query.orderBy("at", "desc").orderBy("id", "desc").limit(q.limit).execute();
}
