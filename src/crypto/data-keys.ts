/**
 * Data keys: a random AES-256 key per file and per batch (envelope encryption), stored only
 * wrapped by a master key. `get` creates the key on first use (concurrent creators converge on
 * the row that won the insert); `destroy` deletes it, after which the object's ciphertext is
 * unreadable wherever copies of it remain (crypto-shredding). Unwrapped keys are cached in memory
 * for a few minutes so the hot paths (claim, checkpoint) do not query the store per row.
 */
import { randomBytes } from "node:crypto";
import { type DataKeyRows, type DataKeys, plaintextDataKeys } from "../store/data-keys.js";
import type { MasterKeyring } from "./master-keys.js";

export { type DataKeys, plaintextDataKeys } from "../store/data-keys.js";

const CACHE_MAX = 4096;
const CACHE_TTL_MS = 5 * 60_000;

/**
 * The data keys over the store's `data_keys` rows (`dataKeyRows(store)`), wrapped by `ring`;
 * plaintext without one. Handed to `openStore` as `{ dataKeys: (rows) => createDataKeys(rows, ring) }`.
 */
export function createDataKeys(rows: DataKeyRows, ring: MasterKeyring | undefined): DataKeys {
  if (ring === undefined) return plaintextDataKeys;
  const keyring = ring;
  const cache = new Map<string, { key: Buffer; at: number }>();
  const loading = new Map<string, Promise<Buffer>>();

  async function load(ownerId: string): Promise<Buffer> {
    let row = await rows.get(ownerId);
    if (row === undefined) {
      const fresh = keyring.wrap(ownerId, randomBytes(32));
      await rows.insert({
        id: ownerId,
        master_key_id: fresh.masterKeyId,
        wrapped: fresh.wrapped,
        created_at: Math.floor(Date.now() / 1000),
      });
      row = await rows.get(ownerId);
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
      await rows.shred(ownerIds);
    },
  };
}

/** Re-wraps every data key with the current master key, so older master keys can be retired. */
export async function rewrapDataKeys(rows: DataKeyRows, ring: MasterKeyring): Promise<number> {
  let done = 0;
  for (;;) {
    const page = await rows.listNotWrappedBy(ring.current.id, 500);
    if (page.length === 0) return done;
    for (const row of page) {
      const key = ring.unwrap(row.id, row.master_key_id, row.wrapped);
      const to = ring.wrap(row.id, key);
      if (await rows.rewrap(row.id, { masterKeyId: row.master_key_id, wrapped: row.wrapped }, to)) done++;
    }
  }
}
