/**
 * The claim-source contract, on each store's own source (SQLite: held claims; PostgreSQL: leased
 * rows), through the interface only: claims in line order without repeats, a verdict written under
 * the source's fence counts once, released rows come back without an attempt spent, a prefix-key
 * claim takes only its group, and what a dead worker held is taken back with its attempt counted.
 */
import { describe, expect, it } from "vitest";
import { insertBatch } from "../../src/store/batches.js";
import type { ClaimedRequest, ClaimSource } from "../../src/store/claims/claim-source.js";
import { checkpoint, type Outcome } from "../../src/store/requests/checkpoint.js";
import { seedPendingRequests, testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const succeeded = (r: ClaimedRequest): Outcome => ({
  kind: "succeeded",
  batchId: r.batchId,
  line: r.line,
  responseStatus: 200,
  requestId: `req-${r.line}`,
  result: "{}",
  error: null,
  usage: null,
});

describe.each(STORES)("the claim source of $name", (kind) => {
  const fresh = useFreshStore(kind);
  let n = 0;

  async function seeded(count: number, prefixOf?: (line: number) => string | null): Promise<string> {
    const batchId = `batch_src_${kind.name}_${n++}`;
    // Each test's journal starts empty: entries earlier tests left would be "a dead worker's".
    await fresh.store.db.deleteFrom("claim_ranges").execute();
    await insertBatch(
      fresh.store,
      testBatch(batchId, { status: "in_progress", total: count }, { tenantId: "default", expiresAt: 2_000_000_000 }),
    );
    await seedPendingRequests(fresh.store, batchId, count, (line) => `{"n":${line}}`);
    if (prefixOf !== undefined) {
      for (let line = 1; line <= count; line++) {
        await fresh.store.db
          .updateTable("requests")
          .set({ prefix_key: prefixOf(line) })
          .where("batch_id", "=", batchId)
          .where("line", "=", line)
          .execute();
      }
    }
    return batchId;
  }

  const source = (owner: string, leaseMs = 60_000): ClaimSource =>
    fresh.store.caps.createClaimSource(fresh.store, { owner, leaseMs });

  const attempts = async (batchId: string) =>
    (
      await fresh.store.db
        .selectFrom("requests")
        .select(["line", "attempts", "status"])
        .where("batch_id", "=", batchId)
        .orderBy("line")
        .execute()
    ).map((r) => [r.line, Number(r.attempts), r.status]);

  it("claims due rows in line order, never the same row twice while it is held", async () => {
    const batchId = await seeded(10);
    const s = source("w1");
    const first = await s.claim({ batchId, limit: 4 });
    const second = await s.claim({ batchId, limit: 4 });
    expect(first.map((r) => r.line)).toEqual([1, 2, 3, 4]);
    expect(second.map((r) => r.line)).toEqual([5, 6, 7, 8]);
    expect(first.every((r) => r.attempt === 1 && r.body === `{"n":${r.line}}`)).toBe(true);
  });

  it("writes a verdict once under its fence, and stops holding what was committed", async () => {
    const batchId = await seeded(3);
    const s = source("w1");
    const rows = await s.claim({ batchId, limit: 3 });
    const outcomes = rows.map(succeeded);
    expect((await checkpoint(fresh.store, s.fence, outcomes)).written).toBe(3);
    s.committed(outcomes);
    expect((await checkpoint(fresh.store, s.fence, outcomes)).written).toBe(0);
    expect(await s.claim({ batchId, limit: 3 })).toEqual([]);
    await s.drain();
    expect((await fresh.store.db.selectFrom("claim_ranges").selectAll().execute()).length).toBe(0);
  });

  it("hands released rows back with no attempt spent", async () => {
    const batchId = await seeded(4);
    const s = source("w1");
    const rows = await s.claim({ batchId, limit: 4 });
    await s.release(rows.slice(0, 2));
    await s.drain();
    const again = await s.claim({ batchId, limit: 4 });
    expect(again.map((r) => [r.line, r.attempt])).toEqual([
      [1, 1],
      [2, 1],
    ]);
    expect((await attempts(batchId)).slice(0, 2).map(([, a, status]) => [a, status])).toEqual(
      s.fence.countsAttemptAtClaim
        ? [
            [1, "running"],
            [1, "running"],
          ]
        : [
            [0, "pending"],
            [0, "pending"],
          ],
    );
  });

  it("claims one prefix group when asked, leaving the other rows", async () => {
    const batchId = await seeded(6, (line) => (line % 2 === 0 ? "even" : "odd"));
    const s = source("w1");
    const even = await s.claim({ batchId, limit: 10, prefixKey: "even" });
    expect(even.map((r) => [r.line, r.prefixKey])).toEqual([
      [2, "even"],
      [4, "even"],
      [6, "even"],
    ]);
    expect((await s.claim({ batchId, limit: 10 })).map((r) => r.line)).toEqual([1, 3, 5]);
  });

  it("takes back what a dead worker held, counting the attempt it may have spent", async () => {
    const batchId = await seeded(3);
    const dead = source("w-dead", 1);
    await dead.claim({ batchId, limit: 2 });
    await new Promise((r) => setTimeout(r, 5)); // past the 1 ms lease (leased rows)
    const next = source("w-next");
    const recovered = (await next.recover()) + (await next.upkeep());
    expect(recovered).toBe(2);
    const rows = await next.claim({ batchId, limit: 3 });
    expect(rows.map((r) => [r.line, r.attempt])).toEqual([
      [1, 2],
      [2, 2],
      [3, 1],
    ]);
  });
});
