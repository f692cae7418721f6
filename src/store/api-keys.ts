/** API key administration: listing (never the key, only its prefix) and revocation. */
import type { ApiKeyTable } from "./schema.js";
import type { Store } from "./store.js";
import { nowSeconds } from "./tenants.js";

export type ApiKeyView = Omit<ApiKeyTable, "key_hash"> & { tenant_name: string };

function keys(store: Store) {
  return store.db
    .selectFrom("api_keys")
    .innerJoin("tenants", "tenants.id", "api_keys.tenant_id")
    .select([
      "api_keys.id",
      "api_keys.tenant_id",
      "tenants.name as tenant_name",
      "api_keys.prefix",
      "api_keys.admin",
      "api_keys.created_at",
      "api_keys.revoked_at",
    ]);
}

export async function listApiKeys(
  store: Store,
  q: { tenantId?: string | undefined; includeRevoked?: boolean } = {},
): Promise<ApiKeyView[]> {
  let query = keys(store);
  if (q.tenantId !== undefined) query = query.where("api_keys.tenant_id", "=", q.tenantId);
  if (q.includeRevoked !== true) query = query.where("api_keys.revoked_at", "is", null);
  return query.orderBy("api_keys.created_at").orderBy("api_keys.id").execute();
}

export async function getApiKey(store: Store, id: string): Promise<ApiKeyView | undefined> {
  return keys(store).where("api_keys.id", "=", id).executeTakeFirst();
}

/** Revokes a key at once; returns false when no active key has this id. */
export async function revokeApiKey(store: Store, id: string): Promise<boolean> {
  const res = await store.db
    .updateTable("api_keys")
    .set({ revoked_at: nowSeconds() })
    .where("id", "=", id)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Whether a key exists and is not revoked (long-lived streams re-check the key that opened them). */
export async function isKeyActive(store: Store, id: string): Promise<boolean> {
  const row = await store.db
    .selectFrom("api_keys")
    .select("id")
    .where("id", "=", id)
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row !== undefined;
}
