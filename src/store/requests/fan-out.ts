/**
 * Fan-out: a leader's final verdict written for every line merged with it (dedup.ts), inside the
 * checkpoint's transaction (checkpoint.ts), so a crash leaves either the leader and all its
 * followers answered or none of them: no line missing, none answered twice. A follower takes the
 * leader's status, response status, request id and result or error (sealed again for its own
 * line: the AAD binds the line) and per-line usage columns; the batch counts it in `completed`
 * or `failed` but not in its usage totals (the engines processed the tokens once).
 *
 * Followers are found through the partial index of merged rows on (batch_id, dup_of) (migration
 * 007). Only verdicts whose claim said the row has followers (`dupCount`) look: the others cost
 * nothing.
 */
import { type Kysely, sql } from "kysely";
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
  const rows = statement(SQLITE_FOLLOWERS).all(leader.batchId, leader.line) as { line: number }[];
  return rows.map((r) => Number(r.line));
}

/** The lines merged with `leader` that still wait, in a transaction. */
export async function followers(db: Kysely<Database>, leader: Leader): Promise<number[]> {
  const rows = await db
    .selectFrom("requests")
    .select("line")
    .where("batch_id", "=", leader.batchId)
    .where("dup_of", "=", leader.line)
    .where("status", "=", sql.lit("merged"))
    .execute();
  return rows.map((r) => Number(r.line));
}

/** No ORDER BY: with one, SQLite's planner walked the batch's primary key instead of the partial index. */
const SQLITE_FOLLOWERS = "SELECT line FROM requests WHERE batch_id = ? AND dup_of = ? AND status = 'merged'";
