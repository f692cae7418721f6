/**
 * Carry-over (store/requests/carry-over.ts) on every dialect: the succeeded rows of an earlier
 * batch answer the new batch's rows with the same custom_id and body, once, with the batch's
 * counters and usage moved by exactly the rows written; changed and failed lines stay pending.
 */
import { describe, expect, it } from "vitest";
import { insertBatch } from "../../src/store/batches.js";
import { HELD_FENCE } from "../../src/store/claims/claim-source.js";
import { carryOverResults } from "../../src/store/requests/carry-over.js";
import { checkpoint, type Outcome } from "../../src/store/requests/checkpoint.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import { readFinishedPage } from "../../src/store/requests/read.js";
import { testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

/** More than one page of 500, so the keyset paging is exercised. */
const ROWS = 1200;

describe.each(STORES)("carry-over on $name", (kind) => {
  const fresh = useFreshStore(kind);

  const verdict = (batchId: string, line: number, ok: boolean): Extract<Outcome, { kind: "succeeded" | "failed" }> => ({
    kind: ok ? "succeeded" : "failed",
    batchId,
    line,
    responseStatus: ok ? 200 : 500,
    requestId: `req-${line}`,
    result: `{"answer":${line}}`,
    error: null,
    usage: { inputTokens: 3, outputTokens: 2, cachedTokens: 1, reasoningTokens: 0 },
  });

  /** Rows as ingest inserts them (with their custom_id key, which carry-over looks them up by). */
  async function seed(id: string, body: (line: number) => string): Promise<void> {
    for (let first = 1; first <= ROWS; first += 500) {
      const lines = Array.from({ length: Math.min(500, ROWS - first + 1) }, (_, i) => first + i);
      await insertRequestChunk(
        fresh.store,
        lines.map((line) => ({
          tenant_id: "default",
          batch_id: id,
          line,
          custom_id: `c-${line}`,
          model: "m",
          body: body(line),
          status: "pending" as const,
          prefix_key: null,
        })),
      );
    }
  }

  async function batch(id: string, body: (line: number) => string, endpoint = "/v1/chat/completions"): Promise<void> {
    const identity = { tenantId: "default", createdAt: 1, expiresAt: 2_000_000_000 };
    await insertBatch(fresh.store, testBatch(id, { status: "in_progress", total: ROWS, endpoint }, identity));
    await seed(id, body);
  }

  const counters = (id: string) =>
    fresh.store.db
      .selectFrom("batches")
      .select(["completed", "failed", "input_tokens", "output_tokens", "cached_tokens"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow()
      .then((b) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Number(v)])));

  it("carries matching succeeded rows once, leaving failed and changed lines pending", async () => {
    const old = `batch_old_${kind.name}`;
    const next = `batch_new_${kind.name}`;
    await batch(old, (line) => `{"n":${line}}`);
    // Line 7 asks something else in the new batch: it must run again.
    await batch(next, (line) => (line === 7 ? `{"n":"changed"}` : `{"n":${line}}`));
    const lines = Array.from({ length: ROWS }, (_, i) => i + 1);
    await checkpoint(
      fresh.store,
      HELD_FENCE,
      lines.map((l) => verdict(old, l, l % 5 !== 0)),
    );
    // One line of the new batch already has its verdict: carry-over must not overwrite it.
    await checkpoint(fresh.store, HELD_FENCE, [{ ...verdict(next, 1, true), result: `{"fresh":1}` }]);

    const succeededOld = lines.filter((l) => l % 5 !== 0);
    const expected = succeededOld.filter((l) => l !== 7 && l !== 1).length;
    expect(await carryOverResults(fresh.store, { fromBatchId: old, toBatchId: next })).toEqual({
      carried: expected,
    });
    expect(await counters(next)).toEqual({
      completed: expected + 1,
      failed: 0,
      input_tokens: 3 * (expected + 1),
      output_tokens: 2 * (expected + 1),
      cached_tokens: expected + 1,
    });
    // Run twice: nothing more.
    expect(await carryOverResults(fresh.store, { fromBatchId: old, toBatchId: next })).toEqual({ carried: 0 });
    expect((await counters(next)).completed).toBe(expected + 1);

    const finished = await readFinishedPage(fresh.store, next, 0, ROWS);
    expect(finished.map((r) => r.line)).toEqual(succeededOld.filter((l) => l !== 7));
    expect(finished[0]).toMatchObject({ line: 1, result: `{"fresh":1}` });
    expect(finished[1]).toMatchObject({
      line: 2,
      custom_id: "c-2",
      status: "succeeded",
      response_status: 200,
      request_id: "req-2",
      result: `{"answer":2}`,
    });
    const pending = await fresh.store.db
      .selectFrom("requests")
      .select("line")
      .where("batch_id", "=", next)
      .where("status", "=", "pending")
      .orderBy("line")
      .execute();
    expect(pending.map((r) => r.line)).toEqual(lines.filter((l) => l % 5 === 0 || l === 7));
  });

  it("carries nothing between batches of different endpoints", async () => {
    const old = `batch_ep_old_${kind.name}`;
    const next = `batch_ep_new_${kind.name}`;
    await batch(old, () => "{}");
    await batch(next, () => "{}", "/v1/embeddings");
    await checkpoint(fresh.store, HELD_FENCE, [verdict(old, 1, true)]);
    expect(await carryOverResults(fresh.store, { fromBatchId: old, toBatchId: next })).toEqual({ carried: 0 });
  });
});
