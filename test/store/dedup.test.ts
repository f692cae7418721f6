/**
 * Dedup within a batch, on every store: the merge pass (each key's first pending line leads, the
 * rest wait merged on it, across pages, fenced by the batch lease), claims that say which rows have
 * followers, the checkpoint's fan-out in the leader's transaction (same answer resealed per line,
 * counted once in usage), retries and lost fences that fan out nothing, cancel and expiry of
 * merged rows, and output rows that name the line that answered them.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createDataKeys } from "../../src/crypto/data-keys.js";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { createRowCodec } from "../../src/crypto/row-cipher.js";
import { acquireBatchLease, type BatchLease, LeaseLostError } from "../../src/store/batch-lease.js";
import { insertBatch } from "../../src/store/batches.js";
import type { ClaimedRequest } from "../../src/store/claims/claim-source.js";
import { dataKeyRows } from "../../src/store/data-keys.js";
import type { RequestInsertRow } from "../../src/store/dialect.js";
import { checkpoint, type Outcome } from "../../src/store/requests/checkpoint.js";
import { mergeDuplicates } from "../../src/store/requests/dedup.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import { readFinishedPage } from "../../src/store/requests/read.js";
import { terminateUnfinished } from "../../src/store/requests/terminate.js";
import { rowCipher } from "../../src/store/row-codec.js";
import type { Store } from "../../src/store/store.js";
import { testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const OWNER = "validator";

describe.each(STORES)("dedup within a batch on $name", (kind) => {
  const t = useFreshStore(kind);
  let n = 0;

  /** An encrypted view of the test store: results must be sealed again for each line. */
  const sealedStore = (): Store => {
    const dataKeys = createDataKeys(dataKeyRows(t.store), parseMasterKeys(randomBytes(32).toString("base64"), "t"));
    return { ...t.store, dataKeys, rowCodec: createRowCodec(dataKeys) };
  };

  /** A validating batch under our lease, one row per key (null: not mergeable), lines from 1. */
  async function seed(store: Store, keys: readonly (string | null)[]): Promise<BatchLease> {
    const batchId = `batch_dedup_${kind.name}_${n++}`;
    await insertBatch(store, testBatch(batchId, { status: "validating", total: keys.length }));
    const lease = { batchId, owner: OWNER };
    expect(await acquireBatchLease(store, lease, "validating", 600_000)).toBe(true);
    const cipher = await rowCipher(store, batchId);
    const rows: RequestInsertRow[] = keys.map((key, i) => ({
      tenant_id: "t1",
      batch_id: batchId,
      line: i + 1,
      custom_id: cipher.seal("custom_id", i + 1, `c${i + 1}`),
      custom_id_hash: cipher.customIdHash(`c${i + 1}`),
      model: "m",
      body: cipher.seal("body", i + 1, `{"key":${JSON.stringify(key)}}`),
      status: "pending",
      prefix_key: null,
      reuse_key: key,
      dedup_key: key,
    }));
    for (let i = 0; i < rows.length; i += store.caps.insertChunkRows) {
      await insertRequestChunk(store, rows.slice(i, i + store.caps.insertChunkRows), lease);
    }
    return lease;
  }

  const rowsOf = (store: Store, batchId: string) =>
    store.db
      .selectFrom("requests")
      .select(["line", "status", "dup_of", "dup_count", "response_status", "request_id", "input_tokens"])
      .where("batch_id", "=", batchId)
      .orderBy("line")
      .execute();

  const batchOf = (store: Store, batchId: string) =>
    store.db
      .selectFrom("batches")
      .select(["merged", "completed", "failed", "input_tokens", "output_tokens"])
      .where("id", "=", batchId)
      .executeTakeFirstOrThrow();

  const claimAll = (store: Store, batchId: string): Promise<ClaimedRequest[]> =>
    store.caps.createClaimSource(store, { owner: "w1", leaseMs: 600_000 }).claim({ batchId, limit: 10_000 });

  const fenceOf = (store: Store) => store.caps.createClaimSource(store, { owner: "w1", leaseMs: 600_000 }).fence;

  const verdict = (r: ClaimedRequest, ok: boolean): Outcome => ({
    kind: ok ? "succeeded" : "failed",
    batchId: r.batchId,
    line: r.line,
    responseStatus: ok ? 200 : 400,
    requestId: `req-${r.line}`,
    result: `{"answer":${JSON.stringify(r.body)}}`,
    error: null,
    usage: { inputTokens: 10, outputTokens: 5, cachedTokens: 0, reasoningTokens: 0 },
    dupCount: r.dupCount,
  });

  it("merges each key's later pending lines into its first one; rows that cannot merge stay", async () => {
    const lease = await seed(t.store, ["a", "b", "a", null, "a", "b", "c", null]);
    expect(await mergeDuplicates(t.store, lease)).toEqual({ merged: 3 });
    const rows = await rowsOf(t.store, lease.batchId);
    expect(rows.map((r) => [r.line, r.status, r.dup_of, Number(r.dup_count)])).toEqual([
      [1, "pending", null, 2],
      [2, "pending", null, 1],
      [3, "merged", 1, 0],
      [4, "pending", null, 0],
      [5, "merged", 1, 0],
      [6, "merged", 2, 0],
      [7, "pending", null, 0],
      [8, "pending", null, 0],
    ]);
    expect(Number((await batchOf(t.store, lease.batchId)).merged)).toBe(3);
  });

  it("walks pages: 2,500 lines over 7 keys leave 7 leaders; a line answered already neither leads nor waits", async () => {
    const keys = Array.from({ length: 2_500 }, (_, i) => `k${i % 7}`);
    const lease = await seed(t.store, keys);
    // Line 1 (key k0) took another batch's answer before the pass (the reuse pass runs first).
    await t.store.db
      .updateTable("requests")
      .set({ status: "succeeded" })
      .where("batch_id", "=", lease.batchId)
      .where("line", "=", 1)
      .execute();
    expect(await mergeDuplicates(t.store, lease)).toEqual({ merged: 2_500 - 1 - 7 });
    const rows = await rowsOf(t.store, lease.batchId);
    const leaders = rows.filter((r) => r.status === "pending");
    expect(leaders.map((r) => r.line)).toEqual([2, 3, 4, 5, 6, 7, 8]);
    const followers = (line: number) => rows.filter((r) => r.dup_of === line).length;
    for (const l of leaders) expect(Number(l.dup_count)).toBe(followers(l.line));
    // k0's lines after line 1 follow line 8, the first pending one.
    expect(rows[14]).toMatchObject({ line: 15, status: "merged", dup_of: 8 });
    expect(rows[0]).toMatchObject({ status: "succeeded", dup_of: null });
    expect(Number((await batchOf(t.store, lease.batchId)).merged)).toBe(2_492);
    // Run again (a validation redone): the count starts over and nothing merges twice.
    expect(await mergeDuplicates(t.store, lease)).toEqual({ merged: 0 });
    expect(Number((await batchOf(t.store, lease.batchId)).merged)).toBe(0);
  });

  it("writes nothing without the batch's lease", async () => {
    const lease = await seed(t.store, ["a", "a"]);
    await expect(mergeDuplicates(t.store, { ...lease, owner: "someone-else" })).rejects.toBeInstanceOf(LeaseLostError);
    expect((await rowsOf(t.store, lease.batchId)).map((r) => r.status)).toEqual(["pending", "pending"]);
  });

  it("claims leaders only, with their followers; a verdict fans out in its transaction, sealed per line, counted once in usage", async () => {
    const store = sealedStore();
    const lease = await seed(store, ["a", "b", "a", null, "a", "b"]);
    await mergeDuplicates(store, lease);
    const claimed = await claimAll(store, lease.batchId);
    expect(claimed.map((r) => [r.line, r.dupCount])).toEqual([
      [1, 2],
      [2, 1],
      [4, 0],
    ]);
    const [a, b, solo] = claimed as [ClaimedRequest, ClaimedRequest, ClaimedRequest];
    const r = await checkpoint(store, fenceOf(store), [verdict(a, true), verdict(b, false), verdict(solo, true)]);
    // Outcomes written: the three verdicts; the batch moved by all six lines.
    expect(r.written).toBe(3);
    expect(r.progress).toEqual([expect.objectContaining({ completed: 4, failed: 2, total: 6 })]);
    const rows = await rowsOf(store, lease.batchId);
    expect(rows.map((x) => [x.line, x.status, x.response_status, x.request_id, Number(x.input_tokens)])).toEqual([
      [1, "succeeded", 200, "req-1", 10],
      [2, "failed", 400, "req-2", 10],
      [3, "succeeded", 200, "req-1", 10],
      [4, "succeeded", 200, "req-4", 10],
      [5, "succeeded", 200, "req-1", 10],
      [6, "failed", 400, "req-2", 10],
    ]);
    // The engines processed three requests' tokens: the batch counts those, not six.
    const totals = await batchOf(store, lease.batchId);
    expect([Number(totals.completed), Number(totals.failed), Number(totals.input_tokens)]).toEqual([4, 2, 30]);
    // Each follower's result opens under its own line (sealed again, not copied).
    const stored = await store.db
      .selectFrom("requests")
      .select(["line", "result"])
      .where("batch_id", "=", lease.batchId)
      .where("line", "in", [1, 3])
      .orderBy("line")
      .execute();
    expect(stored[0]?.result).toMatch(/^enc1:/);
    expect(stored[1]?.result).not.toBe(stored[0]?.result);
    const page = await readFinishedPage(store, lease.batchId, 0, 10);
    expect(page.map((x) => [x.custom_id, x.result, x.merged_with])).toEqual([
      ["c1", `{"answer":"{\\"key\\":\\"a\\"}"}`, null],
      ["c2", `{"answer":"{\\"key\\":\\"b\\"}"}`, null],
      ["c3", `{"answer":"{\\"key\\":\\"a\\"}"}`, "c1"],
      ["c4", `{"answer":"{\\"key\\":null}"}`, null],
      ["c5", `{"answer":"{\\"key\\":\\"a\\"}"}`, "c1"],
      ["c6", `{"answer":"{\\"key\\":\\"b\\"}"}`, "c2"],
    ]);
    // The same verdict again (a stale worker): fenced out, followers not written twice.
    const again = await checkpoint(store, fenceOf(store), [verdict(a, true)]);
    expect(again.written).toBe(0);
    expect(Number((await batchOf(store, lease.batchId)).completed)).toBe(4);
  });

  it("a leader's retry leaves its followers merged; its final verdict answers them", async () => {
    const lease = await seed(t.store, ["a", "a", "a"]);
    await mergeDuplicates(t.store, lease);
    const [leader] = await claimAll(t.store, lease.batchId);
    if (leader === undefined) throw new Error("no leader claimed");
    await checkpoint(t.store, fenceOf(t.store), [{ kind: "retry", batchId: lease.batchId, line: 1, nextAttemptMs: 0 }]);
    expect((await rowsOf(t.store, lease.batchId)).map((r) => r.status)).toEqual(["pending", "merged", "merged"]);
    const [again] = await claimAll(t.store, lease.batchId);
    expect(again).toMatchObject({ line: 1, dupCount: 2, attempt: 2 });
    await checkpoint(t.store, fenceOf(t.store), [verdict(again as ClaimedRequest, true)]);
    expect((await rowsOf(t.store, lease.batchId)).map((r) => r.status)).toEqual([
      "succeeded",
      "succeeded",
      "succeeded",
    ]);
  });

  it.each(["cancelled", "expired"] as const)(
    "%s: merged rows end like pending ones, counted failed",
    async (status) => {
      const lease = await seed(t.store, ["a", "a", "b", "b", "c"]);
      await mergeDuplicates(t.store, lease);
      const [first] = await claimAll(t.store, lease.batchId);
      // Line 1 answered (with its follower) before the batch ended; the rest did not.
      await checkpoint(t.store, fenceOf(t.store), [verdict(first as ClaimedRequest, true)]);
      const n = await terminateUnfinished(t.store, lease, status, { code: `batch_${status}`, message: "x" });
      expect(n).toBe(3);
      const rows = await rowsOf(t.store, lease.batchId);
      expect(rows.map((r) => r.status)).toEqual(["succeeded", "succeeded", status, status, status]);
      const totals = await batchOf(t.store, lease.batchId);
      expect(Number(totals.completed) + Number(totals.failed)).toBe(5);
      const page = await readFinishedPage(t.store, lease.batchId, 0, 10);
      expect(page.map((x) => x.merged_with)).toEqual([null, "c1", null, null, null]);
    },
  );
});
