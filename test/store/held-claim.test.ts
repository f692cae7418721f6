/**
 * In-memory claims (SQLite): a read takes the next due pending rows after a cursor, past the
 * lines held already, writes no row but its journal entry; rows stay pending until their verdict;
 * after a crash the journal's entries count an attempt for the rows they still held.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { insertBatch } from "../../src/store/batches.js";
import { HELD_FENCE } from "../../src/store/claims/claim-source.js";
import { closeClaimRanges, readClaimable, recoverClaimRanges } from "../../src/store/claims/held-claim.js";
import { checkpoint, type Outcome } from "../../src/store/requests/checkpoint.js";
import { seedPendingRequests, testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const sqlite = STORES.find((k) => k.name === "sqlite");
if (sqlite === undefined) throw new Error("the SQLite store kind is always present");

describe("in-memory claims on sqlite", () => {
  const fresh = useFreshStore(sqlite);
  let batchId = "";
  let n = 0;

  beforeEach(async () => {
    batchId = `batch_mem_${n++}`;
    await insertBatch(
      fresh.store,
      testBatch(batchId, { status: "in_progress", total: 10 }, { tenantId: "default", expiresAt: 2_000_000_000 }),
    );
    await seedPendingRequests(fresh.store, batchId, 10, (line) => `{"n":${line}}`);
    await fresh.store.db.deleteFrom("claim_ranges").execute(); // each test's journal starts empty
  });

  const statuses = async () =>
    (
      await fresh.store.db
        .selectFrom("requests")
        .select(["line", "status", "attempts"])
        .where("batch_id", "=", batchId)
        .orderBy("line")
        .execute()
    ).map((r) => [r.line, r.status, Number(r.attempts)] as const);
  const journal = () =>
    fresh.store.db
      .selectFrom("claim_ranges")
      .select(["id", "owner", "lines"])
      .where("batch_id", "=", batchId)
      .execute();

  it("reads due pending rows after the cursor, past held lines, and journals what it took", async () => {
    const first = await readClaimable(fresh.store, { batchId, afterLine: -1, limit: 4, owner: "w1", held: new Set() });
    expect(first.rows.map((r) => [r.line, r.body, r.attempt])).toEqual([
      [1, '{"n":1}', 1],
      [2, '{"n":2}', 1],
      [3, '{"n":3}', 1],
      [4, '{"n":4}', 1],
    ]);
    expect(first.next).toBe(4);
    // Nothing was written to the rows themselves.
    expect((await statuses()).every(([, status, attempts]) => status === "pending" && attempts === 0)).toBe(true);
    // Lines 5 and 6 held already (say, by an earlier read after a wrap): read past, not taken.
    const second = await readClaimable(fresh.store, {
      batchId,
      afterLine: first.next,
      limit: 10,
      owner: "w1",
      held: new Set([5, 6]),
    });
    expect(second.rows.map((r) => r.line)).toEqual([7, 8, 9, 10]);
    expect(second.next).toBe(-1); // fewer than asked: the end, the next read wraps
    expect((await journal()).map((e) => e.lines).sort()).toEqual(["1,2,3,4", "7,8,9,10"]);
    // A read that takes nothing journals nothing.
    const none = await readClaimable(fresh.store, {
      batchId,
      afterLine: 8,
      limit: 5,
      owner: "w1",
      held: new Set([9, 10]),
    });
    expect(none).toEqual({ rows: [], next: -1, rangeId: undefined });
    expect(await journal()).toHaveLength(2);
  });

  it("skips rows whose retry is not yet due, and takes them once it is", async () => {
    const now = 1_000_000;
    const read = await readClaimable(fresh.store, {
      batchId,
      afterLine: -1,
      limit: 2,
      owner: "w1",
      held: new Set(),
      nowMs: now,
    });
    const retry: Outcome = { kind: "retry", batchId, line: 1, nextAttemptMs: now + 5_000 };
    await checkpoint(fresh.store, HELD_FENCE, [retry], now);
    await closeClaimRanges(fresh.store, [read.rangeId as string]);
    expect((await statuses())[0]).toEqual([1, "pending", 1]); // the ended attempt counts
    const early = await readClaimable(fresh.store, {
      batchId,
      afterLine: -1,
      limit: 2,
      owner: "w1",
      held: new Set([2]),
      nowMs: now + 1_000,
    });
    expect(early.rows.map((r) => r.line)).toEqual([3]);
    const due = await readClaimable(fresh.store, {
      batchId,
      afterLine: -1,
      limit: 1,
      owner: "w1",
      held: new Set([2, 3]),
      nowMs: now + 5_000,
    });
    expect(due.rows.map((r) => [r.line, r.attempt])).toEqual([[1, 2]]);
  });

  it("after a crash, counts an attempt for each row another process still held, then drops its entries", async () => {
    const dead = await readClaimable(fresh.store, {
      batchId,
      afterLine: -1,
      limit: 3,
      owner: "w-dead",
      held: new Set(),
    });
    const verdict: Outcome = {
      kind: "succeeded",
      batchId,
      line: 2,
      responseStatus: 200,
      requestId: "r",
      result: "{}",
      error: null,
      usage: null,
    };
    expect((await checkpoint(fresh.store, HELD_FENCE, [verdict])).written).toBe(1);
    const mine = await readClaimable(fresh.store, {
      batchId,
      afterLine: dead.next,
      limit: 2,
      owner: "w-new",
      held: new Set(),
    });
    expect(await recoverClaimRanges(fresh.store, "w-new")).toBe(2); // lines 1 and 3; 2 is finished
    expect((await statuses()).slice(0, 5)).toEqual([
      [1, "pending", 1],
      [2, "succeeded", 0],
      [3, "pending", 1],
      [4, "pending", 0],
      [5, "pending", 0],
    ]);
    expect((await journal()).map((e) => e.id)).toEqual([mine.rangeId]);
    await closeClaimRanges(fresh.store, [mine.rangeId as string]);
    expect(await journal()).toEqual([]);
  });
});

describe.each(STORES.filter((k) => k.name !== "sqlite"))("claims on $name", (kind) => {
  const fresh = useFreshStore(kind);
  it("are leases: its claim source fences on the lease, and an in-memory read is refused", async () => {
    const source = fresh.store.caps.createClaimSource(fresh.store, { owner: "w", leaseMs: 1000 });
    expect(source.fence).toEqual({ status: "running", owner: "w", countsAttemptAtClaim: true });
    await expect(
      readClaimable(fresh.store, { batchId: "b", afterLine: -1, limit: 1, owner: "w", held: new Set() }),
    ).rejects.toThrow(/synchronous/);
  });
});
