/**
 * Checkpoint: write many outcomes in one transaction (group commit). Each row update is fenced by
 * `lease_owner = me AND status = 'running'`, so a worker that lost its lease can never overwrite
 * the new owner's result; the batch's live counters and usage move in the same transaction, only
 * by the rows that were actually written. This is the exactly-once invariant for results.
 */
import { sql } from "kysely";
import { rowCiphers } from "../../crypto/row-cipher.js";
import type { Store } from "../store.js";

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
    }
  | { kind: "retry"; batchId: string; line: number; nextAttemptMs: number }
  | { kind: "release"; batchId: string; line: number };

interface BatchDelta {
  completed: number;
  failed: number;
  input: number;
  output: number;
  cached: number;
  reasoning: number;
}

/** Returns the number of outcomes that were written (the rest had lost their lease). */
export async function checkpoint(
  store: Store,
  owner: string,
  outcomes: readonly Outcome[],
  nowMs = Date.now(),
): Promise<number> {
  if (outcomes.length === 0) return 0;
  const ciphers = await rowCiphers(
    store,
    outcomes.map((o) => o.batchId),
  );
  return store.db.transaction().execute(async (trx) => {
    const deltas = new Map<string, BatchDelta>();
    let written = 0;
    for (const o of outcomes) {
      const fenced = trx
        .updateTable("requests")
        .where("batch_id", "=", o.batchId)
        .where("line", "=", o.line)
        .where("lease_owner", "=", owner)
        .where("status", "=", "running");
      let res: { numUpdatedRows: bigint };
      if (o.kind === "retry") {
        res = await fenced
          .set({ status: "pending", lease_owner: null, lease_expires_ms: null, next_attempt_ms: o.nextAttemptMs })
          .executeTakeFirst();
      } else if (o.kind === "release") {
        // Handed back without a verdict (shutdown): the attempt does not count.
        res = await fenced
          .set({ status: "pending", lease_owner: null, lease_expires_ms: null, attempts: sql`attempts - 1` })
          .executeTakeFirst();
      } else {
        const cipher = ciphers.get(o.batchId);
        res = await fenced
          .set({
            status: o.kind,
            lease_owner: null,
            lease_expires_ms: null,
            response_status: o.responseStatus,
            request_id: o.requestId,
            result: cipher ? cipher.seal("result", o.line, o.result) : o.result,
            error: cipher ? cipher.seal("error", o.line, o.error) : o.error,
            input_tokens: o.usage?.inputTokens ?? null,
            output_tokens: o.usage?.outputTokens ?? null,
            cached_tokens: o.usage?.cachedTokens ?? null,
            reasoning_tokens: o.usage?.reasoningTokens ?? null,
            finished_ms: nowMs,
          })
          .executeTakeFirst();
        if (Number(res.numUpdatedRows) > 0) {
          let d = deltas.get(o.batchId);
          if (d === undefined) {
            d = { completed: 0, failed: 0, input: 0, output: 0, cached: 0, reasoning: 0 };
            deltas.set(o.batchId, d);
          }
          if (o.kind === "succeeded") d.completed++;
          else d.failed++;
          d.input += o.usage?.inputTokens ?? 0;
          d.output += o.usage?.outputTokens ?? 0;
          d.cached += o.usage?.cachedTokens ?? 0;
          d.reasoning += o.usage?.reasoningTokens ?? 0;
        }
      }
      written += Number(res.numUpdatedRows);
    }
    // In id order: two workers' groups touching the same batches lock their rows in one order
    // (any other order can deadlock, and a deadlock aborts a whole group).
    for (const [batchId, d] of [...deltas].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      await trx
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
        .execute();
    }
    return written;
  });
}
