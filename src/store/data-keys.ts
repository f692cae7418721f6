/** Wrapped data keys, one row per file or batch. Deleting a row crypto-shreds that object's data. */
import type { Kysely } from "kysely";
import type { Database, DataKeyTable } from "./schema.js";

type Db = Pick<Kysely<Database>, "selectFrom" | "insertInto" | "deleteFrom" | "updateTable">;

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
