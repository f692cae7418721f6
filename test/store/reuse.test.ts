/**
 * The reuse pass (store/requests/reuse.ts) on every dialect: a validating batch's pending lines
 * take the newest succeeded result of the same tenant's other batches with the same key, once,
 * counted in `completed` and `reused` and not in the batch's usage; failed, changed, other
 * tenants', deleted and expired sources are never taken; writes are fenced on the batch lease.
 */
import { describe, expect, it } from "vitest";
import { requestKeys } from "../../src/batch/request-key.js";
import { LeaseLostError } from "../../src/store/batch-lease.js";
import { deleteEndedBatch, insertBatch } from "../../src/store/batches.js";
import { HELD_FENCE } from "../../src/store/claims/claim-source.js";
import { checkpoint, type Outcome } from "../../src/store/requests/checkpoint.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import { readFinishedPage } from "../../src/store/requests/read.js";
import { reuseFinishedResults } from "../../src/store/requests/reuse.js";
import { plainDigest } from "../../src/store/row-codec.js";
import type { ReuseMode } from "../../src/store/schema.js";
import { testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

/** More than one page of 500, so the keyset paging is exercised. */
const ROWS = 1200;
const OWNER = "w1";
const lines = Array.from({ length: ROWS }, (_, i) => i + 1);

describe.each(STORES)("reuse pass on $name", (kind) => {
  const fresh = useFreshStore(kind);
  let seq = 0;
  const nextId = (tag: string) => `batch_${tag}_${kind.name}_${++seq}`;

  const verdict = (
    batchId: string,
    line: number,
    ok: boolean,
    answer = line,
  ): Extract<Outcome, { kind: "succeeded" | "failed" }> => ({
    kind: ok ? "succeeded" : "failed",
    batchId,
    line,
    responseStatus: ok ? 200 : 500,
    requestId: `req-${batchId}-${line}`,
    result: `{"answer":${answer}}`,
    error: null,
    usage: { inputTokens: 3, outputTokens: 2, cachedTokens: 1, reasoningTokens: 0 },
  });

  interface Spec {
    tenant?: string;
    status?: string;
    body?: (line: number) => string;
    customId?: (line: number) => string;
    extra?: Parameters<typeof testBatch>[1];
  }

  /** A batch and its rows as ingest writes them (keys included); validating ones are leased to OWNER. */
  async function batch(spec: Spec = {}): Promise<string> {
    const id = nextId(spec.status ?? "validating");
    const tenantId = spec.tenant ?? "t1";
    const status = spec.status ?? "validating";
    const identity = { tenantId, createdAt: 1, expiresAt: 2_000_000_000 };
    const owner = status === "validating" ? { owner: OWNER, owner_expires_ms: Date.now() + 60_000 } : {};
    await insertBatch(fresh.store, testBatch(id, { status, total: ROWS, ...owner, ...spec.extra }, identity));
    const body = spec.body ?? ((line) => `{"n":${line}}`);
    const customId = spec.customId ?? ((line) => `c-${line}`);
    for (let first = 1; first <= ROWS; first += 500) {
      const chunk = lines.slice(first - 1, first + 499);
      await insertRequestChunk(
        fresh.store,
        chunk.map((line) => {
          const keys = requestKeys(plainDigest, {
            endpoint: "/v1/chat/completions",
            model: "m",
            routeIdentity: "",
            body: JSON.parse(body(line)) as Record<string, unknown>,
            customId: customId(line),
          });
          return {
            tenant_id: tenantId,
            batch_id: id,
            line,
            custom_id: customId(line),
            model: "m",
            body: body(line),
            status: "pending" as const,
            prefix_key: null,
            reuse_key: keys.reuseKey,
            resubmit_key: keys.resubmitKey,
          };
        }),
      );
    }
    return id;
  }

  /** A finished source: line % 5 === 0 failed, the rest succeeded with `answer(line)`. */
  async function finished(spec: Spec = {}, answer = (line: number) => line, nowMs = Date.now()): Promise<string> {
    const id = await batch({ ...spec, status: "in_progress" });
    await checkpoint(
      fresh.store,
      HELD_FENCE,
      lines.map((l) => verdict(id, l, l % 5 !== 0, answer(l))),
      nowMs,
    );
    return id;
  }

  const reuse = (batchId: string, mode: ReuseMode = "custom_id+body", tenantId = "t1") =>
    reuseFinishedResults(fresh.store, { batchId, owner: OWNER }, { tenantId, mode });

  const counters = (id: string) =>
    fresh.store.db
      .selectFrom("batches")
      .select(["completed", "failed", "reused", "input_tokens", "output_tokens"])
      .where("id", "=", id)
      .executeTakeFirstOrThrow()
      .then((b) => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, Number(v)])));

  const succeededLines = lines.filter((l) => l % 5 !== 0);

  it("takes matching succeeded lines once, leaving failed and changed lines pending", async () => {
    const old = await finished();
    // Line 7 asks something else in the new batch: it must run again.
    const next = await batch({ body: (line) => (line === 7 ? `{"n":"changed"}` : `{"n":${line}}`) });
    // One line of the new batch already has its verdict: the pass must not overwrite it.
    await checkpoint(fresh.store, HELD_FENCE, [{ ...verdict(next, 1, true), result: `{"fresh":1}` }]);

    const expected = succeededLines.filter((l) => l !== 7 && l !== 1).length;
    expect(await reuse(next)).toEqual({ reused: expected });
    // Usage counts what the engines did for this batch: line 1's call only.
    expect(await counters(next)).toEqual({
      completed: expected + 1,
      failed: 0,
      reused: expected,
      input_tokens: 3,
      output_tokens: 2,
    });
    // Run twice: nothing more.
    expect(await reuse(next)).toEqual({ reused: 0 });
    expect((await counters(next)).completed).toBe(expected + 1);

    const done = await readFinishedPage(fresh.store, next, 0, ROWS);
    expect(done.map((r) => r.line)).toEqual(succeededLines.filter((l) => l !== 7));
    expect(done[0]).toMatchObject({ line: 1, result: `{"fresh":1}`, reused_from: null });
    expect(done[1]).toMatchObject({
      line: 2,
      custom_id: "c-2",
      status: "succeeded",
      response_status: 200,
      request_id: `req-${old}-2`,
      result: `{"answer":2}`,
      reused_from: old,
    });
    const row = await fresh.store.db
      .selectFrom("requests")
      .select(["attempts", "input_tokens"])
      .where("batch_id", "=", next)
      .where("line", "=", 2)
      .executeTakeFirstOrThrow();
    expect({ attempts: Number(row.attempts), input_tokens: row.input_tokens }).toEqual({
      attempts: 0,
      input_tokens: null,
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

  it("takes the newest of several sources", async () => {
    const body = (line: number) => `{"newest":${line}}`;
    const older = await finished({ body }, (l) => l, Date.now() - 60_000);
    const newer = await finished({ body }, (l) => l + 10_000);
    const next = await batch({ body });
    expect(await reuse(next)).toEqual({ reused: succeededLines.length });
    const [first] = await readFinishedPage(fresh.store, next, 0, 1);
    expect(first).toMatchObject({ line: 1, result: `{"answer":10001}`, reused_from: newer });
    expect(older).not.toBe(newer);
  });

  it("matches by body alone in mode body, never in custom_id+body; nothing in mode off", async () => {
    const body = (line: number) => `{"by-body":${line}}`;
    await finished({ body });
    const renamed = (line: number) => `renamed-${line}`;
    const strict = await batch({ body, customId: renamed });
    expect(await reuse(strict)).toEqual({ reused: 0 });
    const loose = await batch({ body, customId: renamed });
    expect(await reuse(loose, "body")).toEqual({ reused: succeededLines.length });
    const off = await batch({ body });
    expect(await reuse(off, "off")).toEqual({ reused: 0 });
  });

  it("never takes another tenant's, a deleted batch's or an expired batch's results", async () => {
    const body = (line: number) => `{"isolated":${line}}`;
    await finished({ body, tenant: "t2" });
    const mine = await batch({ body });
    expect(await reuse(mine)).toEqual({ reused: 0 });

    const gone = await finished({ body });
    await fresh.store.db
      .updateTable("batches")
      .set({ status: "completed", completed_at: 1 })
      .where("id", "=", gone)
      .execute();
    expect(await deleteEndedBatch(fresh.store, "t1", gone, ["completed"])).toBe(true);
    const afterDelete = await batch({ body });
    expect(await reuse(afterDelete)).toEqual({ reused: 0 });

    // Ended an hour and a bit ago, results kept an hour: past retention, even before the sweep.
    const now = Math.floor(Date.now() / 1000);
    await finished({ body, extra: { output_expires_seconds: 3600 } });
    await fresh.store.db
      .updateTable("batches")
      .set({ status: "completed", completed_at: now - 3700 })
      .where("output_expires_seconds", "=", 3600)
      .execute();
    const afterExpiry = await batch({ body });
    expect(await reuse(afterExpiry)).toEqual({ reused: 0 });
  });

  it("writes nothing without the batch's lease", async () => {
    const body = (line: number) => `{"fenced":${line}}`;
    await finished({ body });
    const next = await batch({ body });
    await fresh.store.db.updateTable("batches").set({ owner: "w2" }).where("id", "=", next).execute();
    await expect(reuse(next)).rejects.toBeInstanceOf(LeaseLostError);
    expect(await counters(next)).toMatchObject({ completed: 0, reused: 0 });
  });
});
