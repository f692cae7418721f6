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
 * lines count in the batch's `merged`; they are claimed by nobody.
 *
 * Run by validation (dispatch/batch-jobs.ts) after the reuse pass and before the batch goes
 * in_progress, under the job's batch lease: each page's writes are fenced on it, and on each row's
 * `pending` with no lease owner. The pass walks the partial index on (batch_id, dedup_key, line)
 * (migration 007) in pages, keyset on (dedup_key, line): each key's lines come together, its first
 * line first, so memory stays one page whatever the size of the batch and nothing is grouped in
 * memory across pages but the current key.
 */
import { sql } from "kysely";
import { type BatchLease, LeaseLostError, withinLease } from "../batch-lease.js";
import type { Store } from "../store.js";

export interface MergeResult {
  /** Lines of the batch that wait for an identical line's answer. */
  merged: number;
}

interface Merge {
  line: number;
  leader: number;
}

const PAGE = 1000;

/** Merges the batch's identical pending lines into their first one (see the header). */
export async function mergeDuplicates(
  store: Store,
  lease: BatchLease & { readonly signal?: AbortSignal },
): Promise<MergeResult> {
  const batchId = lease.batchId;
  // Validation starts from a clean slate (its rows are re-ingested): so does the count of an
  // earlier pass that was interrupted.
  await withinLease(store, lease, (tx) =>
    tx.db.updateTable("batches").set({ merged: 0 }).where("id", "=", batchId).execute(),
  );
  let merged = 0;
  let after: { key: string; line: number } | undefined;
  let leader: { key: string; line: number } | undefined;
  for (;;) {
    lease.signal?.throwIfAborted();
    const from = after;
    let query = store.db
      .selectFrom("requests")
      .select(["dedup_key", "line", "status"])
      .where("batch_id", "=", batchId)
      .where("dedup_key", "is not", null);
    if (from !== undefined) {
      query = query.where((eb) => eb(eb.refTuple("dedup_key", "line"), ">", eb.tuple(from.key, from.line)));
    }
    const page = await query.orderBy("dedup_key").orderBy("line").limit(PAGE).execute();
    const merges: Merge[] = [];
    for (const r of page) {
      const key = r.dedup_key ?? "";
      after = { key, line: r.line };
      // A line answered already (reused from another batch) neither leads nor waits.
      if (r.status !== "pending") continue;
      if (leader === undefined || leader.key !== key) leader = { key, line: r.line };
      else merges.push({ line: r.line, leader: leader.line });
    }
    if (merges.length > 0) merged += await writeMerges(store, lease, merges);
    if (page.length < PAGE) break;
  }
  return { merged };
}

/** How many followers each leader gained. */
function countByLeader(leaders: Iterable<number>): Map<number, number> {
  const counts = new Map<number, number>();
  for (const l of leaders) counts.set(l, (counts.get(l) ?? 0) + 1);
  return counts;
}

/**
 * One page's merges, the leaders' `dup_count` and the batch's `merged`, in one transaction fenced
 * on the lease; returns the lines merged. SQLite runs it through its synchronous fast path, a
 * prepared one-row statement per line; PostgreSQL joins a VALUES list, one statement for the page.
 */
async function writeMerges(store: Store, lease: BatchLease, merges: readonly Merge[]): Promise<number> {
  const { batchId } = lease;
  if (store.caps.syncTransaction !== undefined) {
    return store.caps.syncTransaction((statement) => {
      if (statement(SQLITE_FENCE).run(batchId, lease.owner).changes === 0) throw new LeaseLostError(batchId);
      const mark = statement(SQLITE_MERGE_ROW);
      const done = merges.filter((m) => mark.run(m.leader, batchId, m.line).changes > 0);
      const lead = statement(SQLITE_LEADER);
      for (const [line, n] of countByLeader(done.map((m) => m.leader))) lead.run(n, batchId, line);
      if (done.length > 0) statement(SQLITE_MERGED).run(done.length, batchId);
      return done.length;
    });
  }
  return withinLease(store, lease, async ({ db }) => {
    const pairs = merges.map((m) => sql`(CAST(${m.line} AS INTEGER), CAST(${m.leader} AS INTEGER))`);
    const marked = await sql<{ dup_of: number }>`
      WITH v (line, leader) AS (VALUES ${sql.join(pairs)})
      UPDATE requests SET status = 'merged', dup_of = v.leader FROM v
      WHERE requests.batch_id = ${batchId} AND requests.line = v.line
        AND requests.status = 'pending' AND requests.lease_owner IS NULL
      RETURNING requests.dup_of`.execute(db);
    const counts = countByLeader(marked.rows.map((r) => Number(r.dup_of)));
    if (counts.size === 0) return 0;
    const leaders = [...counts].map(([line, n]) => sql`(CAST(${line} AS INTEGER), CAST(${n} AS INTEGER))`);
    await sql`
      WITH v (line, n) AS (VALUES ${sql.join(leaders)})
      UPDATE requests SET dup_count = requests.dup_count + v.n FROM v
      WHERE requests.batch_id = ${batchId} AND requests.line = v.line`.execute(db);
    const n = marked.rows.length;
    await db
      .updateTable("batches")
      .set({ merged: sql`merged + ${n}` })
      .where("id", "=", batchId)
      .execute();
    return n;
  });
}

/** The lease's fence (store/batch-lease.ts `withinLease`), as one statement. */
const SQLITE_FENCE = "UPDATE batches SET owner = owner WHERE id = ? AND owner = ?";
/** One follower: the leader's line, then the key; fenced like a held claim's verdict. */
const SQLITE_MERGE_ROW = `UPDATE requests SET status = 'merged', dup_of = ?
  WHERE batch_id = ? AND line = ? AND status = 'pending' AND lease_owner IS NULL`;
const SQLITE_LEADER = "UPDATE requests SET dup_count = dup_count + ? WHERE batch_id = ? AND line = ?";
const SQLITE_MERGED = "UPDATE batches SET merged = merged + ? WHERE id = ?";
