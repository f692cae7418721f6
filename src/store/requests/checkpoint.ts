/**
 * Checkpoint: write many outcomes in one transaction (group commit). Each row update is fenced by
 * the claim source's fence (claims/claim-source.ts: `status = 'running' AND lease_owner = me` for
 * leased rows, `status = 'pending'` with no owner for held ones), so a worker that lost its lease
 * can never overwrite the new owner's result and a row takes one verdict; the batch's live
 * counters and usage move in the same transaction, only by the rows that were actually written.
 * This is the exactly-once invariant for results. A verdict whose row has lines merged with it
 * (dedup within a batch) is written for them too, in the same transaction (fan-out.ts).
 * Verdicts are one statement per chunk of rows on PostgreSQL; SQLite runs the whole checkpoint
 * through its synchronous fast path (dialect.ts), a prepared one-row statement per outcome.
 */
import { CompiledQuery, type Kysely, sql } from "kysely";
import type { Fence } from "../claims/claim-source.js";
import type { SyncStatement } from "../dialect.js";
import { type FieldCipher, rowCiphers } from "../row-codec.js";
import type { Database } from "../schema.js";
import type { Store } from "../store.js";
import { followers, followersSync, hasFollowers, MERGED_FENCE } from "./fan-out.js";

export type Outcome =
  | {
      kind: "succeeded" | "failed";
      batchId: string;
      line: number;
      responseStatus: number | null;
      requestId: string | null;
      /** Response body JSON text (successes and upstream HTTP errors). */
      result: string | null;
      /** `{code, message}` JSON text (failures without an HTTP answer). */
      error: string | null;
      usage: { inputTokens: number; outputTokens: number; cachedTokens: number; reasoningTokens: number } | null;
      /**
       * Lines merged with this one (its claim's `dupCount`, requests/dedup.ts): they take this
       * verdict in the same transaction (fan-out.ts). Absent or 0: none, and nothing is looked up.
       */
      dupCount?: number | undefined;
    }
  | {
      kind: "retry";
      batchId: string;
      line: number;
      nextAttemptMs: number;
      /**
       * false: the call never reached an engine (it was away), so the attempt is not spent — a
       * leased claim's count is given back. Default: the attempt counts.
       */
      countsAttempt?: boolean;
    };

/** 11 parameters a row: 256 rows stay far below SQLite's and PostgreSQL's parameter limits. */
const VERDICTS_PER_STATEMENT = 256;

interface BatchDelta {
  completed: number;
  failed: number;
  input: number;
  output: number;
  cached: number;
  reasoning: number;
}

type Verdict = Extract<Outcome, { kind: "succeeded" | "failed" }>;

/** A batch's counters right after a checkpoint moved them. */
export interface BatchProgress {
  batchId: string;
  tenantId: string;
  status: string;
  completed: number;
  failed: number;
  total: number;
}

export interface CheckpointResult {
  /** Outcomes written (the rest had lost their lease). */
  written: number;
  /** Every batch whose counters moved, as they stand after this checkpoint. */
  progress: BatchProgress[];
}

export async function checkpoint(
  store: Store,
  fence: Fence,
  outcomes: readonly Outcome[],
  nowMs = Date.now(),
): Promise<CheckpointResult> {
  if (outcomes.length === 0) return { written: 0, progress: [] };
  const ciphers = await rowCiphers(
    store,
    outcomes.map((o) => o.batchId),
  );
  const values = (o: Verdict) => verdictValues(o, ciphers.get(o.batchId));
  if (store.caps.syncTransaction !== undefined) {
    return store.caps.syncTransaction((statement) => checkpointSync(statement, fence, outcomes, values, nowMs));
  }
  return store.db.transaction().execute(async (trx) => {
    const tally = new Tally();
    for (const o of outcomes) {
      if (o.kind !== "retry") continue;
      const res = await trx
        .updateTable("requests")
        .set({
          status: "pending",
          lease_owner: null,
          lease_expires_ms: null,
          next_attempt_ms: o.nextAttemptMs,
          attempts: sql`attempts + ${attemptDelta(fence, o)}`,
        })
        .where("batch_id", "=", o.batchId)
        .where("line", "=", o.line)
        .where("status", "=", fence.status)
        .where(sql<boolean>`lease_owner IS NOT DISTINCT FROM ${fence.owner}`)
        .executeTakeFirst();
      tally.written += Number(res.numUpdatedRows);
    }
    const verdicts = outcomes.filter((o): o is Verdict => o.kind === "succeeded" || o.kind === "failed");
    const write = (list: readonly Verdict[], status: string, owner: string | null) =>
      writeVerdicts(trx, verdictStatement.bind(null, store), list, values, [nowMs, status, owner]);
    const written = await write(verdicts, fence.status, fence.owner);
    const fanned: Verdict[] = [];
    for (const o of written) {
      tally.add(o);
      if (hasFollowers(o)) for (const line of await followers(trx, o)) fanned.push({ ...o, line });
    }
    if (fanned.length > 0) {
      for (const f of await write(fanned, MERGED_FENCE.status, MERGED_FENCE.owner)) tally.addFollowers(f, 1);
    }
    const progress: BatchProgress[] = [];
    for (const [batchId, d] of tally.batches()) {
      const b = await trx
        .updateTable("batches")
        .set({
          completed: sql`completed + ${d.completed}`,
          failed: sql`failed + ${d.failed}`,
          input_tokens: sql`input_tokens + ${d.input}`,
          output_tokens: sql`output_tokens + ${d.output}`,
          cached_tokens: sql`cached_tokens + ${d.cached}`,
          reasoning_tokens: sql`reasoning_tokens + ${d.reasoning}`,
        })
        .where("id", "=", batchId)
        .returning(["tenant_id", "status", "completed", "failed", "total"])
        .executeTakeFirst();
      if (b !== undefined) progress.push(progressOf(batchId, b));
    }
    return { written: tally.written, progress };
  });
}

/**
 * PostgreSQL's verdicts, a chunk of up to VERDICTS_PER_STATEMENT rows a statement, fenced by
 * `tail` (now, then the fence's status and owner); returns the verdicts written.
 */
async function writeVerdicts(
  trx: Kysely<Database>,
  statementFor: (rows: number) => string,
  verdicts: readonly Verdict[],
  values: (o: Verdict) => unknown[],
  tail: readonly unknown[],
): Promise<Verdict[]> {
  const written: Verdict[] = [];
  for (let i = 0; i < verdicts.length; i += VERDICTS_PER_STATEMENT) {
    const chunk = verdicts.slice(i, i + VERDICTS_PER_STATEMENT);
    const params: unknown[] = [];
    for (const o of chunk) params.push(o.batchId, o.line, ...values(o));
    // Padded to a bucket size with rows that match nothing (line -1): a handful of statement
    // texts instead of one per group size, each prepared once.
    const rows = bucketSize(chunk.length);
    for (let k = chunk.length; k < rows; k++) params.push("", -1, "failed", ...PADDING_TAIL);
    params.push(...tail);
    const done = await trx.executeQuery<{ batch_id: string; line: number }>(
      CompiledQuery.raw(statementFor(rows), params),
    );
    const byKey = new Map(chunk.map((o) => [`${o.batchId}:${o.line}`, o]));
    for (const r of done.rows) {
      const o = byKey.get(`${r.batch_id}:${Number(r.line)}`);
      if (o !== undefined) written.push(o);
    }
  }
  return written;
}

/**
 * SQLite's checkpoint, synchronous inside one transaction: a prepared one-row statement per
 * outcome (in-process, there are no round trips to save; ~7 µs a row against ~11 for the VALUES
 * join, measured in isolation), then each moved batch's counters.
 */
function checkpointSync(
  statement: (sql: string) => SyncStatement,
  fence: Fence,
  outcomes: readonly Outcome[],
  values: (o: Verdict) => unknown[],
  nowMs: number,
): CheckpointResult {
  const tally = new Tally();
  const verdict = statement(SQLITE_ROW_VERDICT);
  const retry = statement(SQLITE_RETRY);
  const { status, owner } = fence;
  for (const o of outcomes) {
    if (o.kind === "retry")
      tally.written += retry.run(o.nextAttemptMs, attemptDelta(fence, o), o.batchId, o.line, status, owner).changes;
    else if (verdict.run(...values(o), nowMs, o.batchId, o.line, status, owner).changes > 0) {
      tally.add(o);
      if (!hasFollowers(o)) continue;
      let n = 0;
      for (const line of followersSync(statement, o)) {
        const f = { ...o, line };
        n += verdict.run(...values(f), nowMs, o.batchId, line, MERGED_FENCE.status, MERGED_FENCE.owner).changes;
      }
      tally.addFollowers(o, n);
    }
  }
  const progress: BatchProgress[] = [];
  for (const [batchId, d] of tally.batches()) {
    const [b] = statement(SQLITE_COUNTERS).all(
      d.completed,
      d.failed,
      d.input,
      d.output,
      d.cached,
      d.reasoning,
      batchId,
    ) as BatchCounters[];
    if (b !== undefined) progress.push(progressOf(batchId, b));
  }
  return { written: tally.written, progress };
}

/**
 * What a retry adds to the row's attempts: a spent attempt counts once (here, unless the claim
 * already counted it); an attempt that never reached an engine is not spent (a leased claim's
 * count is taken back).
 */
function attemptDelta(fence: Fence, o: Extract<Outcome, { kind: "retry" }>): number {
  const spent = o.countsAttempt === false ? 0 : 1;
  return spent - (fence.countsAttemptAtClaim ? 1 : 0);
}

/** Rows written by a checkpoint, and what its verdicts add to each batch's counters. */
class Tally {
  written = 0;
  readonly #deltas = new Map<string, BatchDelta>();

  add(o: Verdict): void {
    this.written++;
    const d = this.#delta(o.batchId);
    if (o.kind === "succeeded") d.completed++;
    else d.failed++;
    d.input += o.usage?.inputTokens ?? 0;
    d.output += o.usage?.outputTokens ?? 0;
    d.cached += o.usage?.cachedTokens ?? 0;
    d.reasoning += o.usage?.reasoningTokens ?? 0;
  }

  /**
   * `n` lines merged with `o` took its verdict: counted like it, but not in the usage (the
   * engines processed its tokens once), and not as outcomes written.
   */
  addFollowers(o: Verdict, n: number): void {
    const d = this.#delta(o.batchId);
    if (o.kind === "succeeded") d.completed += n;
    else d.failed += n;
  }

  #delta(batchId: string): BatchDelta {
    let d = this.#deltas.get(batchId);
    if (d === undefined) {
      d = { completed: 0, failed: 0, input: 0, output: 0, cached: 0, reasoning: 0 };
      this.#deltas.set(batchId, d);
    }
    return d;
  }

  /**
   * In id order: two workers' groups touching the same batches lock their rows in one order (any
   * other order can deadlock, and a deadlock aborts a whole group).
   */
  batches(): [string, BatchDelta][] {
    return [...this.#deltas].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }
}

interface BatchCounters {
  tenant_id: string;
  status: string;
  completed: number | string | bigint;
  failed: number | string | bigint;
  total: number | string | bigint;
}

function progressOf(batchId: string, b: BatchCounters): BatchProgress {
  return {
    batchId,
    tenantId: b.tenant_id,
    status: b.status,
    completed: Number(b.completed),
    failed: Number(b.failed),
    total: Number(b.total),
  };
}

const PADDING_TAIL = [null, null, null, null, null, null, null, null] as const;

/** A verdict's column values after its key, in VERDICT_COLUMNS order (result and error sealed). */
function verdictValues(o: Verdict, cipher: FieldCipher | undefined): unknown[] {
  return [
    o.kind,
    o.responseStatus,
    o.requestId,
    cipher ? cipher.seal("result", o.line, o.result) : o.result,
    cipher ? cipher.seal("error", o.line, o.error) : o.error,
    o.usage?.inputTokens ?? null,
    o.usage?.outputTokens ?? null,
    o.usage?.cachedTokens ?? null,
    o.usage?.reasoningTokens ?? null,
  ];
}

/** The smallest of 8, 16, 32 … VERDICTS_PER_STATEMENT that holds `n` rows. */
function bucketSize(n: number): number {
  let size = 8;
  while (size < n) size *= 2;
  return Math.min(size, VERDICTS_PER_STATEMENT);
}

/** The verdict statement's SQL for `rows` rows, compiled once per dialect and row count. */
const verdictSql = new WeakMap<Store["db"], Map<number, string>>();

/**
 * PostgreSQL's verdicts: one statement for a whole chunk (UPDATE … FROM a VALUES list), one round
 * trip instead of one per row. Its text depends only on the row count, so it is compiled once per
 * count and then run with a flat parameter list (11 a row, then now and the fence): building the query
 * per call cost ~15 µs a row. (Portable to SQLite ≥ 3.33 too, where the one-row statement is
 * cheaper; with SQLite's planner the join also leaned on the running-rows index.)
 */
function verdictStatement(store: Store, rows: number): string {
  let byCount = verdictSql.get(store.db);
  if (byCount === undefined) {
    byCount = new Map();
    verdictSql.set(store.db, byCount);
  }
  let text = byCount.get(rows);
  if (text === undefined) {
    const values = Array.from({ length: rows }, () => {
      const cols = VERDICT_COLUMNS.map(([, type]) => sql`CAST(${0} AS ${sql.raw(type)})`);
      return sql`(${sql.join(cols)})`;
    });
    const compiled = sql`
      WITH v (${sql.raw(VERDICT_COLUMNS.map(([name]) => name).join(", "))}) AS (VALUES ${sql.join(values)})
      UPDATE requests SET status = v.status, lease_owner = NULL, lease_expires_ms = NULL,
        response_status = v.response_status, request_id = v.request_id, result = v.result,
        error = v.error, input_tokens = v.input_tokens, output_tokens = v.output_tokens,
        cached_tokens = v.cached_tokens, reasoning_tokens = v.reasoning_tokens,
        finished_ms = CAST(${0} AS BIGINT)
      FROM v
      WHERE requests.batch_id = v.batch_id AND requests.line = v.line
        AND requests.status = CAST(${0} AS TEXT) AND requests.lease_owner IS NOT DISTINCT FROM CAST(${0} AS TEXT)
      RETURNING requests.batch_id, requests.line`.compile(store.db);
    if (compiled.parameters.length !== rows * VERDICT_COLUMNS.length + 3) {
      throw new Error("checkpoint statement: unexpected parameter count");
    }
    text = compiled.sql;
    byCount.set(rows, text);
  }
  return text;
}

/** The VALUES list's columns, in parameter order, with the type each is cast to. */
const VERDICT_COLUMNS: readonly (readonly [string, string])[] = [
  ["batch_id", "TEXT"],
  ["line", "INTEGER"],
  ["status", "TEXT"],
  ["response_status", "INTEGER"],
  ["request_id", "TEXT"],
  ["result", "TEXT"],
  ["error", "TEXT"],
  ["input_tokens", "BIGINT"],
  ["output_tokens", "BIGINT"],
  ["cached_tokens", "BIGINT"],
  ["reasoning_tokens", "BIGINT"],
];

/** SQLite's fence (the claim source's): status and owner (`IS`: equal, or both NULL for held claims). */
const SQLITE_FENCE = "WHERE batch_id = ? AND line = ? AND status = ? AND lease_owner IS ?";
/** A retry: back to pending when due, its attempts moved by attemptDelta. */
const SQLITE_RETRY = `UPDATE requests SET status = 'pending', lease_owner = NULL, lease_expires_ms = NULL,
  next_attempt_ms = ?, attempts = attempts + ? ${SQLITE_FENCE}`;
const SQLITE_COUNTERS = `UPDATE batches SET completed = completed + ?, failed = failed + ?,
  input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, cached_tokens = cached_tokens + ?,
  reasoning_tokens = reasoning_tokens + ? WHERE id = ? RETURNING tenant_id, status, completed, failed, total`;
/** One row's verdict: verdictValues, then now, the key and the fence. */
const SQLITE_ROW_VERDICT = `UPDATE requests SET status = ?, lease_owner = NULL, lease_expires_ms = NULL,
  response_status = ?, request_id = ?, result = ?, error = ?, input_tokens = ?, output_tokens = ?,
  cached_tokens = ?, reasoning_tokens = ?, finished_ms = ? ${SQLITE_FENCE}`;
