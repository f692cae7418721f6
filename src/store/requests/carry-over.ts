/**
 * Carry-over: a state change from `pending` straight to `succeeded`, without a call. The succeeded
 * rows of an earlier batch answer the rows of a new batch that ask the same thing (same custom_id,
 * identical body, same endpoint), so only the rest is sent to an engine. `sluice run` uses it when
 * a rerun starts a new batch over the same input after failed lines, or over an edited input.
 *
 * Rows are matched by the new batch's own custom_id key (`custom_id_hash`, keyed per batch): each
 * page of source rows is opened under the old batch's cipher, its ids hashed under the new batch's
 * key and looked up through the new batch's unique index, so memory stays one page whatever the
 * size of the batch. A carried row keeps its response, request id and usage (resealed under the
 * new batch's key); the new batch's `completed` and usage totals move by the rows written, in the
 * same transaction. Its `attempts` stay 0: no call was made for it in this batch.
 *
 * Fenced like a held claim's verdict (`status = 'pending'`, no lease owner): a row that already
 * has a verdict is left alone, so running it twice carries nothing twice. Run it before anything
 * claims the new batch's rows; a row claimed meanwhile still gets one verdict (checkpoint's fence
 * refuses the second), but its call was made for nothing.
 */
import { sql } from "kysely";
import { rowCipher } from "../row-codec.js";
import type { Store } from "../store.js";

export interface CarryOver {
  /** The ended (or abandoned) batch whose succeeded rows are reused. */
  fromBatchId: string;
  /** The new batch, validated, before its worker claims anything. */
  toBatchId: string;
}

export interface CarryOverResult {
  /** Rows of the new batch answered from the old one. */
  carried: number;
}

const PAGE = 500;

/** Carries every matching succeeded row of `fromBatchId` into `toBatchId` (see the header). */
export async function carryOverResults(store: Store, c: CarryOver, nowMs = Date.now()): Promise<CarryOverResult> {
  const endpoints = await store.db
    .selectFrom("batches")
    .select(["id", "endpoint"])
    .where("id", "in", [c.fromBatchId, c.toBatchId])
    .execute();
  const endpointOf = new Map(endpoints.map((b) => [b.id, b.endpoint]));
  const endpoint = endpointOf.get(c.toBatchId);
  if (endpoint === undefined || endpointOf.get(c.fromBatchId) !== endpoint) return { carried: 0 };
  const from = await rowCipher(store, c.fromBatchId);
  const to = await rowCipher(store, c.toBatchId);
  let carried = 0;
  let after = 0;
  for (;;) {
    const page = await store.db
      .selectFrom("requests")
      .select([
        "line",
        "custom_id",
        "body",
        "response_status",
        "request_id",
        "result",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "reasoning_tokens",
      ])
      .where("batch_id", "=", c.fromBatchId)
      .where("status", "=", "succeeded")
      .where("line", ">", after)
      .orderBy("line")
      .limit(PAGE)
      .execute();
    const last = page[page.length - 1];
    if (last === undefined) break;
    after = last.line;
    const byKey = new Map(page.map((r) => [to.customIdHash(from.open("custom_id", r.line, r.custom_id)), r] as const));
    const targets = await store.db
      .selectFrom("requests")
      .select(["line", "custom_id_hash", "body"])
      .where("batch_id", "=", c.toBatchId)
      .where("status", "=", "pending")
      .where("custom_id_hash", "in", [...byKey.keys()])
      .execute();
    const matched = targets.flatMap((t) => {
      const s = t.custom_id_hash === null ? undefined : byKey.get(t.custom_id_hash);
      if (s === undefined || to.open("body", t.line, t.body) !== from.open("body", s.line, s.body)) return [];
      return [{ line: t.line, s, result: to.seal("result", t.line, from.open("result", s.line, s.result)) }];
    });
    if (matched.length === 0) continue;
    carried += await writeCarried(store, c.toBatchId, matched, nowMs);
  }
  return { carried };
}

interface SourceRow {
  response_status: number | null;
  request_id: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cached_tokens: number | null;
  reasoning_tokens: number | null;
}

interface Carried {
  line: number;
  s: SourceRow;
  /** The source's result, sealed for this row of the new batch. */
  result: string | null;
}

/**
 * One page's rows and the batch's counters, in one transaction; returns the rows written. SQLite
 * runs it through its synchronous fast path (dialect.ts), a prepared one-row statement per row:
 * carrying 90,000 rows took 4.8 s through Kysely (an async round per row) and 1.5 s this way
 * (plaintext, page reads included; about 16 s a million lines).
 */
async function writeCarried(store: Store, batchId: string, rows: readonly Carried[], nowMs: number): Promise<number> {
  const sum = { n: 0, input: 0, output: 0, cached: 0, reasoning: 0 };
  const add = ({ s }: Carried) => {
    sum.n++;
    sum.input += Number(s.input_tokens ?? 0);
    sum.output += Number(s.output_tokens ?? 0);
    sum.cached += Number(s.cached_tokens ?? 0);
    sum.reasoning += Number(s.reasoning_tokens ?? 0);
  };
  const values = ({ s, result }: Carried) => [
    s.response_status,
    s.request_id,
    result,
    s.input_tokens,
    s.output_tokens,
    s.cached_tokens,
    s.reasoning_tokens,
    nowMs,
  ];
  if (store.caps.syncTransaction !== undefined) {
    return store.caps.syncTransaction((statement) => {
      const row = statement(SQLITE_CARRY_ROW);
      for (const r of rows) if (row.run(...values(r), batchId, r.line).changes > 0) add(r);
      if (sum.n > 0) statement(SQLITE_COUNTERS).run(sum.n, sum.input, sum.output, sum.cached, sum.reasoning, batchId);
      return sum.n;
    });
  }
  return store.db.transaction().execute(async (trx) => {
    for (const r of rows) {
      const res = await trx
        .updateTable("requests")
        .set({
          status: "succeeded",
          response_status: r.s.response_status,
          request_id: r.s.request_id,
          result: r.result,
          error: null,
          input_tokens: r.s.input_tokens,
          output_tokens: r.s.output_tokens,
          cached_tokens: r.s.cached_tokens,
          reasoning_tokens: r.s.reasoning_tokens,
          finished_ms: nowMs,
        })
        .where("batch_id", "=", batchId)
        .where("line", "=", r.line)
        .where("status", "=", "pending")
        .where("lease_owner", "is", null)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) > 0) add(r);
    }
    if (sum.n > 0) {
      await trx
        .updateTable("batches")
        .set({
          completed: sql`completed + ${sum.n}`,
          input_tokens: sql`input_tokens + ${sum.input}`,
          output_tokens: sql`output_tokens + ${sum.output}`,
          cached_tokens: sql`cached_tokens + ${sum.cached}`,
          reasoning_tokens: sql`reasoning_tokens + ${sum.reasoning}`,
        })
        .where("id", "=", batchId)
        .execute();
    }
    return sum.n;
  });
}

/** One carried row: values(), then the key; fenced like a held claim's verdict. */
const SQLITE_CARRY_ROW = `UPDATE requests SET status = 'succeeded', response_status = ?, request_id = ?, result = ?,
  error = NULL, input_tokens = ?, output_tokens = ?, cached_tokens = ?, reasoning_tokens = ?, finished_ms = ?
  WHERE batch_id = ? AND line = ? AND status = 'pending' AND lease_owner IS NULL`;
const SQLITE_COUNTERS = `UPDATE batches SET completed = completed + ?, input_tokens = input_tokens + ?,
  output_tokens = output_tokens + ?, cached_tokens = cached_tokens + ?, reasoning_tokens = reasoning_tokens + ?
  WHERE id = ?`;
