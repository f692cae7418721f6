/**
 * Fan-out: a leader's final verdict written for every line merged with it (dedup.ts), inside the
 * checkpoint's transaction (checkpoint.ts), so a crash leaves either the leader and all its
 * followers answered or none of them: no line missing, none answered twice. A follower takes the
 * leader's status, response status, request id and result or error (sealed again for its own
 * line: the AAD binds the line) and per-line usage columns; the batch counts it in `completed`
 * or `failed` but not in its usage totals (the engines processed the tokens once).
 *
 * Followers are found through the partial index of mergeable lines (migration 007): same batch,
 * the leader's `dedup_key`, status `merged` and `dup_of` = the leader. Only verdicts whose claim
 * said the row has followers (`dupCount`) look: the others cost nothing.
 */
import type { Kysely } from "kysely";
import type { SyncStatement } from "../dialect.js";
import type { Database } from "../schema.js";

/** The fence of merged rows: no lease, status `merged` (the verdict statements' last two parameters). */
export const MERGED_FENCE = { status: "merged", owner: null } as const;

/** A verdict's row and whether its claim saw followers. */
interface Leader {
  batchId: string;
  line: number;
  dupCount?: number | undefined;
}

export const hasFollowers = (o: Leader): boolean => (o.dupCount ?? 0) > 0;

/** The lines merged with `leader` that still wait, through SQLite's synchronous fast path. */
export function followersSync(statement: (sql: string) => SyncStatement, leader: Leader): number[] {
  const rows = statement(SQLITE_FOLLOWERS).all(leader.batchId, leader.batchId, leader.line, leader.line) as {
    line: number;
  }[];
  return rows.map((r) => Number(r.line));
}

/** The lines merged with `leader` that still wait, in a transaction. */
export async function followers(db: Kysely<Database>, leader: Leader): Promise<number[]> {
  const rows = await db
    .selectFrom("requests")
    .select("line")
    .where("batch_id", "=", leader.batchId)
    .where("dedup_key", "is not", null)
    .where("dedup_key", "=", (eb) =>
      eb
        .selectFrom("requests as l")
        .select("l.dedup_key")
        .where("l.batch_id", "=", leader.batchId)
        .where("l.line", "=", leader.line),
    )
    .where("status", "=", "merged")
    .where("dup_of", "=", leader.line)
    .orderBy("line")
    .execute();
  return rows.map((r) => Number(r.line));
}

const SQLITE_FOLLOWERS = `SELECT line FROM requests WHERE batch_id = ? AND dedup_key IS NOT NULL
  AND dedup_key = (SELECT l.dedup_key FROM requests l WHERE l.batch_id = ? AND l.line = ?)
  AND status = 'merged' AND dup_of = ? ORDER BY line`;
