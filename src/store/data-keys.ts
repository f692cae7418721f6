/** Wrapped data keys, one row per file or batch. Deleting a row crypto-shreds that object's data. */
import type { Kysely } from "kysely";
import type { Database, DataKeyTable } from "./schema.js";
import type { Store } from "./store.js";

type Db = Pick<Kysely<Database>, "selectFrom" | "insertInto" | "deleteFrom" | "updateTable">;

/**
 * The data keys of files and batches (envelope encryption), as the store's users see them
 * (`store.dataKeys`). Made above the store (src/crypto/data-keys.ts, from the master keys) and
 * handed to `openStore`: the store holds no key material and no cipher.
 */
export interface DataKeys {
  /** False without a master key: data is stored in plaintext. */
  readonly enabled: boolean;
  /** The data key of a file or batch, created on first use; null when encryption is off. */
  get(ownerId: string): Promise<Buffer | null>;
  /** Destroys the data keys of these objects (crypto-shredding). */
  destroy(...ownerIds: string[]): Promise<void>;
}

export const plaintextDataKeys: DataKeys = {
  enabled: false,
  get: async () => null,
  destroy: async () => {},
};

/** The `data_keys` rows, for whoever makes the data keys (src/crypto/data-keys.ts). */
export interface DataKeyRows {
  get(id: string): Promise<DataKeyTable | undefined>;
  /** Inserts unless a key exists already (a concurrent creator won): the caller re-reads. */
  insert(row: DataKeyTable): Promise<void>;
  /**
   * Deletes the rows, then has the engine drop older copies of them (`caps.afterShred`: deleting
   * a row is not enough while SQLite's WAL or free pages keep it).
   */
  shred(ids: readonly string[]): Promise<void>;
  /** Keys wrapped by another master key than `masterKeyId`, for re-wrapping after a rotation. */
  listNotWrappedBy(masterKeyId: string, limit: number): Promise<DataKeyTable[]>;
  /** Replaces a wrapping only if it is still the one that was read (compare-and-set). */
  rewrap(
    id: string,
    from: { masterKeyId: string; wrapped: string },
    to: { masterKeyId: string; wrapped: string },
  ): Promise<boolean>;
}

export function dataKeyRows(store: Pick<Store, "db" | "caps">): DataKeyRows {
  const { db, caps } = store;
  return {
    get: (id) => getDataKeyRow(db, id),
    insert: (row) => insertDataKeyRow(db, row),
    async shred(ids) {
      await deleteDataKeyRows(db, ids);
      await caps.afterShred();
    },
    listNotWrappedBy: (masterKeyId, limit) => listDataKeysNotWrappedBy(db, masterKeyId, limit),
    rewrap: (id, from, to) => rewrapDataKeyRow(db, id, from, to),
  };
}

export async function getDataKeyRow(db: Db, id: string): Promise<DataKeyTable | undefined> {
  return db.selectFrom("data_keys").selectAll().where("id", "=", id).executeTakeFirst();
}

/** Inserts unless a key exists already (a concurrent creator won): the caller re-reads. */
export async function insertDataKeyRow(db: Db, row: DataKeyTable): Promise<void> {
  await db
    .insertInto("data_keys")
    .values(row)
    .onConflict((oc) => oc.column("id").doNothing())
    .execute();
}

export async function deleteDataKeyRows(db: Db, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.deleteFrom("data_keys").where("id", "in", ids).execute();
}

/** Keys wrapped by another master key than `masterKeyId`, for re-wrapping after a rotation. */
export async function listDataKeysNotWrappedBy(db: Db, masterKeyId: string, limit: number): Promise<DataKeyTable[]> {
  return db
    .selectFrom("data_keys")
    .selectAll()
    .where("master_key_id", "!=", masterKeyId)
    .orderBy("id")
    .limit(limit)
    .execute();
}

/** Replaces a wrapping only if it is still the one that was read (compare-and-set). */
export async function rewrapDataKeyRow(
  db: Db,
  id: string,
  from: { masterKeyId: string; wrapped: string },
  to: { masterKeyId: string; wrapped: string },
): Promise<boolean> {
  const res = await db
    .updateTable("data_keys")
    .set({ master_key_id: to.masterKeyId, wrapped: to.wrapped })
    .where("id", "=", id)
    .where("master_key_id", "=", from.masterKeyId)
    .where("wrapped", "=", from.wrapped)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}
