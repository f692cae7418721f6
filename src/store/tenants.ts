/** Tenants and API keys. Keys are stored only as SHA-256 hashes; comparison is by hash lookup. */
import { createHash, timingSafeEqual } from "node:crypto";
import { randomToken } from "../ids.js";
import type { TenantTable } from "./schema.js";
import type { Store } from "./store.js";

export const DEFAULT_TENANT = "default";
export const KEY_PREFIX = "sk-sluice-";

export interface ApiKeyRecord {
  id: string;
  tenantId: string;
  admin: boolean;
}

export async function ensureDefaultTenant(store: Store): Promise<void> {
  await store.db
    .insertInto("tenants")
    .values({ id: DEFAULT_TENANT, name: DEFAULT_TENANT, created_at: nowSeconds() })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

export type TenantRow = TenantTable;
export type TenantLimitColumns = Pick<
  TenantRow,
  "max_file_bytes" | "max_batch_lines" | "max_concurrent_batches" | "max_enqueued_tokens"
>;

export const TENANT_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

export async function getTenant(store: Store, id: string): Promise<TenantRow | undefined> {
  return store.db.selectFrom("tenants").selectAll().where("id", "=", id).executeTakeFirst();
}

export async function findTenantByName(store: Store, name: string): Promise<TenantRow | undefined> {
  return store.db.selectFrom("tenants").selectAll().where("name", "=", name).executeTakeFirst();
}

export async function listTenants(store: Store): Promise<TenantRow[]> {
  return store.db.selectFrom("tenants").selectAll().orderBy("created_at").orderBy("id").execute();
}

/** The tenant with this name, created if new (ids are random: names never reach blob keys). */
export async function ensureTenant(store: Store, name: string): Promise<TenantRow> {
  const existing = await findTenantByName(store, name);
  if (existing !== undefined) return existing;
  await store.db
    .insertInto("tenants")
    .values({ id: `ten_${randomToken(16)}`, name, created_at: nowSeconds() })
    .onConflict((oc) => oc.column("name").doNothing())
    .execute();
  const row = await findTenantByName(store, name);
  if (row === undefined) throw new Error(`tenant ${name} vanished while being created`);
  return row;
}

/** Sets (number) or clears (null) limit overrides; absent columns are left unchanged. */
export async function setTenantLimits(store: Store, id: string, limits: Partial<TenantLimitColumns>): Promise<void> {
  if (Object.keys(limits).length === 0) return;
  await store.db.updateTable("tenants").set(limits).where("id", "=", id).execute();
}

export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Constant-time comparison of a presented key with a configured one. */
export function keysEqual(presented: string, expected: string): boolean {
  const a = Buffer.from(hashKey(presented), "hex");
  const b = Buffer.from(hashKey(expected), "hex");
  return timingSafeEqual(a, b);
}

export function generateKey(): string {
  return `${KEY_PREFIX}${randomToken(40)}`;
}

export async function createApiKey(
  store: Store,
  options: { tenantId: string; admin?: boolean; key?: string },
): Promise<{ id: string; key: string }> {
  const key = options.key ?? generateKey();
  const id = `key_${randomToken(16)}`;
  await store.db
    .insertInto("api_keys")
    .values({
      id,
      tenant_id: options.tenantId,
      key_hash: hashKey(key),
      prefix: key.slice(0, KEY_PREFIX.length + 4),
      admin: options.admin === true ? 1 : 0,
      created_at: nowSeconds(),
      revoked_at: null,
    })
    .execute();
  return { id, key };
}

export async function countActiveKeys(store: Store): Promise<number> {
  const row = await store.db
    .selectFrom("api_keys")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("revoked_at", "is", null)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function findApiKey(store: Store, key: string): Promise<ApiKeyRecord | undefined> {
  const row = await store.db
    .selectFrom("api_keys")
    .select(["id", "tenant_id", "admin"])
    .where("key_hash", "=", hashKey(key))
    .where("revoked_at", "is", null)
    .executeTakeFirst();
  return row === undefined ? undefined : { id: row.id, tenantId: row.tenant_id, admin: row.admin === 1 };
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
