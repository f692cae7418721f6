/**
 * The merge pass (dedup within a batch): identical lines of one batch are sent once. A line that
 * may merge has a `dedup_key` (its reuse key, set at ingest when the batch's dedup mode allows:
 * batch/ingest.ts); among the batch's pending lines with one key, the first (lowest line) is the
 * leader and is called as usual, and every other one waits for its answer:
 *
 *   pending ──(an earlier pending line of the batch has its dedup_key)──> merged (dup_of = leader)
 *   merged  ──(the leader's final verdict, in the same transaction: fan-out.ts)──> succeeded | failed
 *   merged  ──(cancel, expiry: terminate.ts)──> cancelled | expired
 *
 * A leader's retry leaves its followers merged; a leader carries `dup_count` (its followers), so
 * a claim can tell the checkpoint which verdicts fan out without a look-up for the others. Merged
 * lines count in the batch's `merged`; nothing claims them.
 *
 * Run by validation (dispatch/batch-jobs.ts) after the reuse pass and before the batch goes
 * in_progress, under the job's batch lease: every write is fenced on it, and each row's on its
 * `pending` with no lease owner. The database groups the keys, once (`dedup_groups`, migration
 * 007: each key more than one line asks, with its first line; an index on dedup_key, written at
 * random places line after line, cost ingest about half its speed). Then the pass walks the batch
 * in ranges of lines, marking in one statement each range's lines whose key has an earlier
 * leader: the database holds the groups, this process holds nothing whatever the batch's size.
 */
import { sql } from "kysely";
import { type BatchLease, withinLease } from "../batch-lease.js";
import type { Store } from "../store.js";

export interface MergeResult {
  /** Lines of the batch that wait for an identical line's answer. */
  merged: number;
}

/**
 * Lines a step of the pass covers (one statement, one transaction): a range of the batch's
 * primary key, walked whatever the planner's statistics say (just after ingest, PostgreSQL's may
 * not know the batch's rows yet), each line's leader found through `dedup_groups`' key.
 */
const SPAN = 2000;

/** Merges the batch's identical pending lines into their first one (see the header). */
export async function mergeDuplicates(
  store: Store,
  lease: BatchLease & { readonly signal?: AbortSignal },
): Promise<MergeResult> {
  const batchId = lease.batchId;
  // Validation starts from a clean slate (its rows are re-ingested): so do the count and the
  // groups of an earlier pass that was interrupted.
  const groups = await withinLease(store, lease, async ({ db }) => {
    await db.updateTable("batches").set({ merged: 0 }).where("id", "=", batchId).execute();
    await db.deleteFrom("dedup_groups").where("batch_id", "=", batchId).execute();
    const res = await sql`INSERT INTO dedup_groups (batch_id, dedup_key, leader, followers)
      SELECT batch_id, dedup_key, MIN(line), COUNT(*) - 1 FROM requests
      WHERE batch_id = ${batchId} AND status = 'pending' AND dedup_key IS NOT NULL
      GROUP BY batch_id, dedup_key HAVING COUNT(*) > 1 ORDER BY batch_id, dedup_key`.execute(db);
    const n = Number(res.numAffectedRows ?? 0);
    // Each leader's followers are known now: every other pending line of its key (nothing else
    // writes the batch's rows while it validates).
    if (n > 0) {
      await sql`UPDATE requests SET dup_count = g.followers FROM dedup_groups g
        WHERE g.batch_id = ${batchId} AND requests.batch_id = ${batchId} AND requests.line = g.leader`.execute(db);
    }
    return n;
  });
  if (groups === 0) return { merged: 0 };
  const last = await store.db
    .selectFrom("requests")
    .select((eb) => eb.fn.max("line").as("line"))
    .where("batch_id", "=", batchId)
    .executeTakeFirst();
  const lastLine = Number(last?.line ?? 0);
  let merged = 0;
  for (let after = 0; after < lastLine; after += SPAN) {
    lease.signal?.throwIfAborted();
    merged += await withinLease(store, lease, async ({ db }) => {
      const res = await sql`UPDATE requests SET status = 'merged', dup_of = g.leader FROM dedup_groups g
        WHERE requests.batch_id = ${batchId} AND requests.line > ${after} AND requests.line <= ${after + SPAN}
          AND requests.status = 'pending' AND requests.lease_owner IS NULL AND requests.dedup_key IS NOT NULL
          AND g.batch_id = ${batchId} AND g.dedup_key = requests.dedup_key AND g.leader < requests.line`.execute(db);
      const n = Number(res.numAffectedRows ?? 0);
      if (n > 0) {
        await db
          .updateTable("batches")
          .set({ merged: sql`merged + ${n}` })
          .where("id", "=", batchId)
          .execute();
      }
      return n;
    });
  }
  await withinLease(store, lease, ({ db }) => db.deleteFrom("dedup_groups").where("batch_id", "=", batchId).execute());
  return { merged };
}
