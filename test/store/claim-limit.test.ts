/**
 * A claim takes at most `limit` rows, lowest lines first, and concurrent claims never share a row.
 * Regression: on PostgreSQL, `line IN (… LIMIT n FOR UPDATE SKIP LOCKED)` was planned as a
 * nested-loop semi join that re-ran the subquery per row, so one claim took the whole batch.
 */
import { describe, expect, it } from "vitest";
import { claimRequests } from "../../src/store/claims/leased-claim.js";
import { seedPendingRequests } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

describe.each(STORES)("claimRequests on $name", (kind) => {
  const fresh = useFreshStore(kind);

  it("claims exactly `limit` rows, and concurrent claims are disjoint", async () => {
    const batchId = "batch_claim_limit";
    await seedPendingRequests(fresh.store, batchId, 2000);
    const claim = (owner: string) => claimRequests(fresh.store, { batchId, owner, leaseMs: 60_000, limit: 32 });
    const first = await claim("w1");
    expect(first.map((r) => r.line)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    const concurrent = await Promise.all(["w2", "w3", "w4"].map(claim));
    const lines = concurrent.flat().map((r) => r.line);
    for (const c of concurrent) expect(c).toHaveLength(32);
    expect(new Set(lines).size).toBe(96);
    expect(Math.min(...lines)).toBe(33);
    const running = await fresh.store.db
      .selectFrom("requests")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("batch_id", "=", batchId)
      .where("status", "=", "running")
      .executeTakeFirstOrThrow();
    expect(Number(running.n)).toBe(128);
  });
});
