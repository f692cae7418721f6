/** Reads terminal rows in input order, a page at a time (keyset on line): for output files. */
import { rowCipher } from "../row-codec.js";
import type { Store } from "../store.js";

export interface FinishedRow {
  line: number;
  custom_id: string;
  status: string;
  response_status: number | null;
  request_id: string | null;
  result: string | null;
  error: string | null;
  /** The batch whose result this line took instead of a call (store/requests/reuse.ts), or null. */
  reused_from: string | null;
}

export async function readFinishedPage(
  store: Store,
  batchId: string,
  afterLine: number,
  pageSize: number,
): Promise<FinishedRow[]> {
  const cipher = await rowCipher(store, batchId);
  const rows = await store.db
    .selectFrom("requests")
    .select(["line", "custom_id", "status", "response_status", "request_id", "result", "error", "reused_from"])
    .where("batch_id", "=", batchId)
    .where("line", ">", afterLine)
    .where("status", "in", ["succeeded", "failed", "cancelled", "expired"])
    .orderBy("line")
    .limit(pageSize)
    .execute();
  for (const r of rows) {
    r.custom_id = cipher.open("custom_id", r.line, r.custom_id);
    r.result = cipher.open("result", r.line, r.result);
    r.error = cipher.open("error", r.line, r.error);
  }
  return rows;
}
