/** Reads terminal rows in input order, a page at a time (keyset on line): for output files. */
import { type FieldCipher, rowCipher } from "../row-codec.js";
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
  /**
   * The custom_id of the line whose answer this one took (merged with it: requests/dedup.ts), or
   * null: answered on its own, or not answered (a merged line cancelled or expired).
   */
  merged_with: string | null;
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
    .select([
      "line",
      "custom_id",
      "status",
      "response_status",
      "request_id",
      "result",
      "error",
      "reused_from",
      "dup_of",
    ])
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
  const leaders = await leaderIds(store, cipher, batchId, rows);
  return rows.map(({ dup_of, ...r }) => ({
    ...r,
    merged_with: dup_of !== null && answered(r) ? (leaders.get(dup_of) ?? null) : null,
  }));
}

/** A merged line took its leader's verdict (cancelled and expired ones were never answered). */
const answered = (r: { status: string }) => r.status === "succeeded" || r.status === "failed";

/** The custom_ids of the leaders that answered the page's merged lines, by line. */
async function leaderIds(
  store: Store,
  cipher: FieldCipher,
  batchId: string,
  rows: readonly { dup_of: number | null; status: string }[],
): Promise<Map<number, string>> {
  const lines = new Set<number>();
  for (const r of rows) {
    if (r.dup_of !== null && answered(r)) lines.add(r.dup_of);
  }
  if (lines.size === 0) return new Map();
  const found = await store.db
    .selectFrom("requests")
    .select(["line", "custom_id"])
    .where("batch_id", "=", batchId)
    .where("line", "in", [...lines])
    .execute();
  return new Map(found.map((l) => [l.line, cipher.open("custom_id", l.line, l.custom_id)]));
}
