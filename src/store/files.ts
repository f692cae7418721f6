/** File rows: metadata for blobs in the blob store. Every query is scoped by tenant. */

import type { FileTable } from "./schema.js";
import type { Store } from "./store.js";

export type FileRow = FileTable;
/** Upload statistics may be unknown (files written before they were counted, or by `sluice run`). */
export type NewFileRow = Omit<FileRow, "line_count" | "token_estimate"> &
  Partial<Pick<FileRow, "line_count" | "token_estimate">>;

export async function insertFile(store: Store, row: NewFileRow): Promise<void> {
  await store.db.insertInto("files").values(row).execute();
}

export async function getFile(store: Store, tenantId: string, id: string): Promise<FileRow | undefined> {
  return store.db
    .selectFrom("files")
    .selectAll()
    .where("tenant_id", "=", tenantId)
    .where("id", "=", id)
    .executeTakeFirst();
}

export interface ListFilesQuery {
  tenantId: string;
  purpose?: string | undefined;
  limit: number;
  order: "asc" | "desc";
  after?: string | undefined;
}

/** Keyset pagination on (created_at, id); `after` is the id of the last item of the previous page. */
export async function listFiles(store: Store, q: ListFilesQuery): Promise<FileRow[]> {
  let query = store.db.selectFrom("files").selectAll().where("tenant_id", "=", q.tenantId);
  if (q.purpose !== undefined) query = query.where("purpose", "=", q.purpose);
  if (q.after !== undefined) {
    const cursor = await getFile(store, q.tenantId, q.after);
    if (cursor !== undefined) {
      const op = q.order === "asc" ? ">" : "<";
      query = query.where((eb) =>
        eb.or([
          eb("created_at", op, cursor.created_at),
          eb.and([eb("created_at", "=", cursor.created_at), eb("id", op, cursor.id)]),
        ]),
      );
    }
  }
  return query.orderBy("created_at", q.order).orderBy("id", q.order).limit(q.limit).execute();
}

export async function deleteFileRow(store: Store, tenantId: string, id: string): Promise<boolean> {
  const res = await store.db
    .deleteFrom("files")
    .where("tenant_id", "=", tenantId)
    .where("id", "=", id)
    .executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}

/** Files whose expires_at passed; the sweeper deletes them and their blobs. */
export async function listExpiredFiles(store: Store, now: number, limit: number): Promise<FileRow[]> {
  return store.db
    .selectFrom("files")
    .selectAll()
    .where("expires_at", "is not", null)
    .where("expires_at", "<=", now)
    .limit(limit)
    .execute();
}
