/**
 * Data keys: a random AES-256 key per file and per batch (envelope encryption), stored only
 * wrapped by a master key. `get` creates the key on first use (concurrent creators converge on
 * the row that won the insert); `destroy` deletes it, after which the object's ciphertext is
 * unreadable wherever copies of it remain (crypto-shredding). Unwrapped keys are cached in memory
 * for a few minutes so the hot paths (claim, checkpoint) do not query the store per row.
 */
import { randomBytes } from "node:crypto";
import type { Kysely } from "kysely";
import {
  deleteDataKeyRows,
  getDataKeyRow,
  insertDataKeyRow,
  listDataKeysNotWrappedBy,
  rewrapDataKeyRow,
} from "../store/data-keys.js";
import type { Database } from "../store/schema.js";
import type { MasterKeyring } from "./master-keys.js";

export interface DataKeys {
  /** False without a master key: data is stored in plaintext. */
  readonly enabled: boolean;
  /** The data key of a file or batch, created on first use; null when encryption is off. */
  get(ownerId: string): Promise<Buffer | null>;
  /** Destroys the data keys of these objects (crypto-shredding). */
  destroy(...ownerIds: string[]): Promise<void>;
}

const CACHE_MAX = 4096;
const CACHE_TTL_MS = 5 * 60_000;

export const plaintextDataKeys: DataKeys = {
  enabled: false,
  get: async () => null,
  destroy: async () => {},
};

/**
 * `afterShred` runs after keys were deleted (the store's `caps.afterShred`): deleting the row is
 * not enough while the engine keeps older copies of it (SQLite's WAL, free pages).
 */
export function createDataKeys(
  db: Kysely<Database>,
  ring: MasterKeyring | undefined,
  afterShred: () => Promise<void> = async () => {},
): DataKeys {
  if (ring === undefined) return plaintextDataKeys;
  const keyring = ring;
  const cache = new Map<string, { key: Buffer; at: number }>();
  const loading = new Map<string, Promise<Buffer>>();

  async function load(ownerId: string): Promise<Buffer> {
    let row = await getDataKeyRow(db, ownerId);
    if (row === undefined) {
      const fresh = keyring.wrap(ownerId, randomBytes(32));
      await insertDataKeyRow(db, {
        id: ownerId,
        master_key_id: fresh.masterKeyId,
        wrapped: fresh.wrapped,
        created_at: Math.floor(Date.now() / 1000),
      });
      row = await getDataKeyRow(db, ownerId);
      if (row === undefined) throw new Error(`data key of ${ownerId} vanished while being created`);
    }
    return keyring.unwrap(ownerId, row.master_key_id, row.wrapped);
  }

  return {
    enabled: true,
    async get(ownerId) {
      const hit = cache.get(ownerId);
      if (hit !== undefined && Date.now() - hit.at < CACHE_TTL_MS) return hit.key;
      let pending = loading.get(ownerId);
      if (pending === undefined) {
        pending = load(ownerId).finally(() => loading.delete(ownerId));
        loading.set(ownerId, pending);
      }
      const key = await pending;
      cache.delete(ownerId);
      cache.set(ownerId, { key, at: Date.now() });
      if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
      return key;
    },
    async destroy(...ownerIds) {
      for (const id of ownerIds) cache.delete(id);
      await deleteDataKeyRows(db, ownerIds);
      await afterShred();
    },
  };
}

/** Re-wraps every data key with the current master key, so older master keys can be retired. */
export async function rewrapDataKeys(db: Kysely<Database>, ring: MasterKeyring): Promise<number> {
  let done = 0;
  for (;;) {
    const rows = await listDataKeysNotWrappedBy(db, ring.current.id, 500);
    if (rows.length === 0) return done;
    for (const row of rows) {
      const key = ring.unwrap(row.id, row.master_key_id, row.wrapped);
      const to = ring.wrap(row.id, key);
      if (await rewrapDataKeyRow(db, row.id, { masterKeyId: row.master_key_id, wrapped: row.wrapped }, to)) done++;
    }
  }
}
