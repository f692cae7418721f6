/**
 * The reuse pass: a state change from `pending` straight to `succeeded`, without a call. A line
 * of a new batch that asks what a finished line of the same tenant already answered takes that
 * answer: the batch's mode picks the key it is matched by (`custom_id+body`: `resubmit_key`, a
 * resubmission; `body`: `reuse_key`, any identical request; `off`: nothing is matched). Keys are
 * keyed hashes under the tenant's own reuse key (batch/request-key.ts), so a lookup never matches
 * another tenant's rows, and it is confined to the tenant's rows besides.
 *
 *   pending ──(a succeeded row of another batch of the tenant has its key)──> succeeded (reused_from)
 *
 * What can be a source: a `succeeded` row of another batch that still exists (a deleted batch has
 * no rows; retention deletes rows) and whose results are not past their retention; of several, the
 * one that finished last. Its result is opened under its batch's cipher and sealed under the new
 * batch's; a source that no longer opens (its data key destroyed: crypto-shredded) is skipped and
 * its line is called like any other. The line keeps the source's response status and request id,
 * `reused_from` names the source's batch, `attempts` stay 0 (no call was made for it), and it is
 * counted in the batch's `completed` and `reused`, not in its usage: the batch's usage counts the
 * tokens the engines processed for it (the line's own usage stays in its response body).
 *
 * Run by validation (dispatch/batch-jobs.ts), after ingest and before the batch goes in_progress,
 * under the job's batch lease: each page's writes are fenced on it, and on each row's `pending`
 * with no lease owner, so a row that has a verdict is never overwritten. The pass pages through
 * the new batch's pending rows (keyset on line), so memory stays one page whatever the size. A
 * validation redone after a crash starts from a clean slate, counts included (batches.ts
 * `clearBatchRequests`); run twice on the same rows, the pass writes nothing twice.
 */
import { sql } from "kysely";
import { type BatchLease, LeaseLostError, withinLease } from "../batch-lease.js";
import { type FieldCipher, rowCipher } from "../row-codec.js";
import type { ReuseMode } from "../schema.js";
import type { Store } from "../store.js";

export interface ReuseTarget {
  tenantId: string;
  mode: ReuseMode;
}

export interface ReuseResult {
  /** Lines of the batch answered from another batch's result. */
  reused: number;
}

const PAGE = 2_000;

/** Answers the batch's pending lines from the tenant's finished ones (see the header). */
export async function reuseFinishedResults(
  store: Store,
  lease: BatchLease & { readonly signal?: AbortSignal },
  target: ReuseTarget,
  nowMs = Date.now(),
): Promise<ReuseResult> {
  if (target.mode === "off") return { reused: 0 };
  const batchId = lease.batchId;
  const keyColumn = target.mode === "body" ? "reuse_key" : "resubmit_key";
  const to = await rowCipher(store, batchId);
  const ciphers = new Map<string, FieldCipher>();
  let reused = 0;
  let after = 0;
  for (;;) {
    lease.signal?.throwIfAborted();
    const page = await store.db
      .selectFrom("requests")
      .select(["line", keyColumn])
      .where("batch_id", "=", batchId)
      .where("status", "=", "pending")
      .where("line", ">", after)
      .orderBy("line")
      .limit(PAGE)
      .execute();
    const last = page[page.length - 1];
    if (last === undefined) break;
    after = last.line;
    const wanted = new Map<string, number[]>();
    for (const r of page) {
      const key = r[keyColumn];
      if (key === null) continue;
      const lines = wanted.get(key);
      if (lines === undefined) wanted.set(key, [r.line]);
      else lines.push(r.line);
    }
    if (wanted.size === 0) continue;
    const sources = await newestSources(store, target.tenantId, batchId, keyColumn, [...wanted.keys()], nowMs);
    if (sources.length === 0) continue;
    const rows: Reused[] = [];
    for (const s of sources) {
      let from = ciphers.get(s.batch_id);
      if (from === undefined) {
        from = await rowCipher(store, s.batch_id);
        if (ciphers.size >= 64) ciphers.clear();
        ciphers.set(s.batch_id, from);
      }
      let result: string | null;
      try {
        result = from.open("result", s.line, s.result);
      } catch {
        continue; // crypto-shredded (or otherwise unreadable): the line is called instead
      }
      for (const line of wanted.get(s.key) ?? []) {
        rows.push({ line, s, result: to.seal("result", line, result) });
      }
    }
    if (rows.length > 0) reused += await writeReused(store, lease, rows, nowMs);
  }
  return { reused };
}

interface Source {
  key: string;
  batch_id: string;
  line: number;
  response_status: number | null;
  request_id: string | null;
  result: string | null;
}

/**
 * For each key, the tenant's succeeded row outside `batchId` that finished last, among batches
 * whose results are within their retention. Two reads: the candidates' keys and places (small),
 * then the results of the chosen ones only.
 */
async function newestSources(
  store: Store,
  tenantId: string,
  batchId: string,
  keyColumn: "reuse_key" | "resubmit_key",
  keys: string[],
  nowMs: number,
): Promise<Source[]> {
  const now = Math.floor(nowMs / 1000);
  const candidates = await store.db
    .selectFrom("requests")
    .innerJoin("batches", "batches.id", "requests.batch_id")
    .select([`requests.${keyColumn} as key`, "requests.batch_id", "requests.line", "requests.finished_ms"])
    .where("requests.tenant_id", "=", tenantId)
    .where(`requests.${keyColumn}`, "in", keys)
    // A literal, so SQLite uses the partial indexes on succeeded rows (migration 006).
    .where(sql<boolean>`requests.status = 'succeeded'`)
    .where("requests.batch_id", "!=", batchId)
    .where("batches.tenant_id", "=", tenantId)
    .where((eb) =>
      eb.or([
        eb("batches.output_expires_seconds", "is", null),
        eb(
          sql<
            number | null
          >`coalesce(batches.completed_at, batches.expired_at, batches.cancelled_at, batches.failed_at)`,
          "is",
          null,
        ),
        eb(
          sql<number>`coalesce(batches.completed_at, batches.expired_at, batches.cancelled_at, batches.failed_at) + batches.output_expires_seconds`,
          ">",
          now,
        ),
      ]),
    )
    .execute();
  const newest = new Map<string, (typeof candidates)[number]>();
  for (const c of candidates) {
    if (c.key === null) continue;
    const held = newest.get(c.key);
    if (held === undefined || Number(c.finished_ms ?? 0) > Number(held.finished_ms ?? 0)) newest.set(c.key, c);
  }
  const byBatch = new Map<string, Map<number, string>>();
  for (const [key, c] of newest) {
    const lines = byBatch.get(c.batch_id) ?? new Map<number, string>();
    byBatch.set(c.batch_id, lines);
    lines.set(c.line, key);
  }
  const out: Source[] = [];
  for (const [sourceBatch, lines] of byBatch) {
    const rows = await store.db
      .selectFrom("requests")
      .select(["line", "response_status", "request_id", "result"])
      .where("batch_id", "=", sourceBatch)
      .where("line", "in", [...lines.keys()])
      .where("status", "=", "succeeded")
      .execute();
    for (const r of rows) out.push({ ...r, batch_id: sourceBatch, key: lines.get(r.line) ?? "" });
  }
  return out;
}

interface Reused {
  line: number;
  s: Source;
  /** The source's result, sealed for this row of the new batch. */
  result: string | null;
}

/**
 * One page's rows and the batch's counters, in one transaction fenced on the lease; returns the
 * rows written. SQLite runs it through its synchronous fast path (dialect.ts), a prepared one-row
 * statement per row: carrying 90,000 rows took 4.8 s through Kysely (an async round per row) and
 * 1.5 s this way.
 */
async function writeReused(store: Store, lease: BatchLease, rows: readonly Reused[], nowMs: number): Promise<number> {
  const values = ({ s, result }: Reused) => [s.response_status, s.request_id, result, s.batch_id, nowMs];
  if (store.caps.syncTransaction !== undefined) {
    return store.caps.syncTransaction((statement) => {
      if (statement(SQLITE_FENCE).run(lease.batchId, lease.owner).changes === 0) {
        throw new LeaseLostError(lease.batchId);
      }
      const row = statement(SQLITE_REUSE_ROW);
      let n = 0;
      for (const r of rows) n += row.run(...values(r), lease.batchId, r.line).changes;
      if (n > 0) statement(SQLITE_COUNTERS).run(n, n, lease.batchId);
      return n;
    });
  }
  return withinLease(store, lease, async (tx) => {
    let n = 0;
    for (const r of rows) {
      const res = await tx.db
        .updateTable("requests")
        .set({
          status: "succeeded",
          response_status: r.s.response_status,
          request_id: r.s.request_id,
          result: r.result,
          error: null,
          reused_from: r.s.batch_id,
          finished_ms: nowMs,
        })
        .where("batch_id", "=", lease.batchId)
        .where("line", "=", r.line)
        .where("status", "=", "pending")
        .where("lease_owner", "is", null)
        .executeTakeFirst();
      n += Number(res.numUpdatedRows);
    }
    if (n > 0) {
      await tx.db
        .updateTable("batches")
        .set({ completed: sql`completed + ${n}`, reused: sql`reused + ${n}` })
        .where("id", "=", lease.batchId)
        .execute();
    }
    return n;
  });
}

/** The lease's fence (store/batch-lease.ts `withinLease`), as one statement. */
const SQLITE_FENCE = "UPDATE batches SET owner = owner WHERE id = ? AND owner = ?";
/** One reused row: values(), then the key; fenced like a held claim's verdict. */
const SQLITE_REUSE_ROW = `UPDATE requests SET status = 'succeeded', response_status = ?, request_id = ?, result = ?,
  error = NULL, reused_from = ?, finished_ms = ?
  WHERE batch_id = ? AND line = ? AND status = 'pending' AND lease_owner IS NULL`;
const SQLITE_COUNTERS = "UPDATE batches SET completed = completed + ?, reused = reused + ? WHERE id = ?";
