/**
 * What a retry outcome does to a row's attempts, on every dialect and under both fences: a call
 * that reached an engine spends one attempt (once: a leased claim already counted it, a held one
 * did not), and one that never reached an engine (`countsAttempt: false`, the engine was away)
 * spends none — a held claim adds nothing, a leased claim's count is given back. Either way the
 * stored count is the attempts spent, and the next claim makes attempt spent + 1.
 */
import { describe, expect, it } from "vitest";
import { insertBatch } from "../../src/store/batches.js";
import { type ClaimSource, HELD_FENCE, leaseFence } from "../../src/store/claims/claim-source.js";
import { claimRequests } from "../../src/store/claims/leased-claim.js";
import { checkpoint, type Outcome } from "../../src/store/requests/checkpoint.js";
import { seedPendingRequests, testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

describe.each(STORES)("retry attempts on $name", (kind) => {
  const fresh = useFreshStore(kind);
  let n = 0;

  async function seeded(count: number): Promise<string> {
    const batchId = `batch_retry_${kind.name}_${n++}`;
    await fresh.store.db.deleteFrom("claim_ranges").execute();
    await insertBatch(
      fresh.store,
      testBatch(batchId, { status: "in_progress", total: count }, { tenantId: "default", expiresAt: 2_000_000_000 }),
    );
    await seedPendingRequests(fresh.store, batchId, count);
    return batchId;
  }

  const retry = (batchId: string, line: number, countsAttempt?: boolean, nextAttemptMs = 1): Outcome => ({
    kind: "retry",
    batchId,
    line,
    nextAttemptMs,
    ...(countsAttempt === undefined ? {} : { countsAttempt }),
  });

  const stored = async (batchId: string) =>
    (
      await fresh.store.db
        .selectFrom("requests")
        .select(["line", "attempts", "status", "lease_owner"])
        .where("batch_id", "=", batchId)
        .orderBy("line")
        .execute()
    ).map((r) => [r.line, Number(r.attempts), r.status, r.lease_owner]);

  const source = (owner: string): ClaimSource =>
    fresh.store.caps.createClaimSource(fresh.store, { owner, leaseMs: 60_000 });

  it("through the store's own claim source: unreached spends nothing, a reached call one", async () => {
    const batchId = await seeded(3);
    const s = source("w1");
    const rows = await s.claim({ batchId, limit: 3 });
    expect(rows.map((r) => r.attempt)).toEqual([1, 1, 1]);
    const outcomes = [retry(batchId, 1, false), retry(batchId, 2), retry(batchId, 3, true)];
    expect((await checkpoint(fresh.store, s.fence, outcomes)).written).toBe(3);
    s.committed(outcomes);
    expect(await stored(batchId)).toEqual([
      [1, 0, "pending", null],
      [2, 1, "pending", null],
      [3, 1, "pending", null],
    ]);
    const again = await s.claim({ batchId, limit: 3 });
    expect(again.map((r) => [r.line, r.attempt])).toEqual([
      [1, 1],
      [2, 2],
      [3, 2],
    ]);
  });

  it("under the held fence: adds 0 for an unreached call, 1 for a reached one", async () => {
    const batchId = await seeded(2);
    const r = await checkpoint(fresh.store, HELD_FENCE, [retry(batchId, 1, false), retry(batchId, 2)]);
    expect(r).toEqual({ written: 2, progress: [] });
    expect((await stored(batchId)).map(([line, attempts]) => [line, attempts])).toEqual([
      [1, 0],
      [2, 1],
    ]);
  });

  it("under a lease: gives back the claim's count for an unreached call, keeps it for a reached one", async () => {
    const batchId = await seeded(2);
    await claimRequests(fresh.store, { batchId, owner: "w1", leaseMs: 60_000, limit: 2 });
    expect((await stored(batchId)).map(([, attempts, status]) => [attempts, status])).toEqual([
      [1, "running"],
      [1, "running"],
    ]);
    const r = await checkpoint(fresh.store, leaseFence("w1"), [retry(batchId, 1, false), retry(batchId, 2)]);
    expect(r.written).toBe(2);
    expect(await stored(batchId)).toEqual([
      [1, 0, "pending", null],
      [2, 1, "pending", null],
    ]);
  });

  it("never exhausts a line's attempts while its engine is away, however many calls were refused", async () => {
    const batchId = await seeded(1);
    const s = source("w1");
    for (let round = 0; round < 10; round++) {
      const [row] = await s.claim({ batchId, limit: 1 });
      expect(row?.attempt).toBe(1);
      const outcome = retry(batchId, 1, false);
      expect((await checkpoint(fresh.store, s.fence, [outcome])).written).toBe(1);
      s.committed([outcome]);
    }
    expect(await stored(batchId)).toEqual([[1, 0, "pending", null]]);
  });

  it("keeps an unreached retry pending until it is due", async () => {
    const batchId = await seeded(1);
    const s = source("w1");
    const now = 1_000_000;
    await s.claim({ batchId, limit: 1, nowMs: now });
    const outcome = retry(batchId, 1, false, now + 5_000);
    await checkpoint(fresh.store, s.fence, [outcome]);
    s.committed([outcome]);
    expect(await s.claim({ batchId, limit: 1, nowMs: now + 4_999 })).toEqual([]);
    expect((await s.claim({ batchId, limit: 1, nowMs: now + 5_000 })).map((r) => [r.line, r.attempt])).toEqual([
      [1, 1],
    ]);
  });

  it("writes nothing, and takes nothing back, for a row whose lease another worker holds", async () => {
    const batchId = await seeded(1);
    await claimRequests(fresh.store, { batchId, owner: "w2", leaseMs: 60_000, limit: 1 });
    const r = await checkpoint(fresh.store, leaseFence("w1"), [retry(batchId, 1, false)]);
    expect(r.written).toBe(0);
    expect(await stored(batchId)).toEqual([[1, 1, "running", "w2"]]);
  });
});
