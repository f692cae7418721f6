/**
 * The group-commit checkpointer on a real SQLite store, with fake timers: outcomes wait for the
 * group's delay and go in one transaction; a group whose transaction fails is kept, retried with
 * backoff, and written once — never dropped, never doubled.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { Checkpointer } from "../../src/dispatch/checkpointer.js";
import { insertBatch } from "../../src/store/batches.js";
import { HELD_FENCE } from "../../src/store/claims/claim-source.js";
import type { Outcome } from "../../src/store/requests/checkpoint.js";
import type { Store } from "../../src/store/store.js";
import { seedPendingRequests, testBatch } from "../helpers/rows.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const sqlite = STORES.find((k) => k.name === "sqlite");
if (sqlite === undefined) throw new Error("the SQLite store kind is always present");

const verdict = (batchId: string, line: number): Outcome => ({
  kind: "succeeded",
  batchId,
  line,
  responseStatus: 200,
  requestId: `r${line}`,
  result: "{}",
  error: null,
  usage: { inputTokens: 1, outputTokens: 1, cachedTokens: 0, reasoningTokens: 0 },
});

/** The same store, whose transactions fail `failures` times first (a lost connection, a deadlock). */
function failing(store: Store, failures: number): Store {
  let left = failures;
  const sync = store.caps.syncTransaction;
  if (sync === undefined) throw new Error("SQLite has the synchronous path");
  return {
    ...store,
    caps: {
      ...store.caps,
      syncTransaction: (fn) => {
        if (left-- > 0) return Promise.reject(new Error("database is locked"));
        return sync(fn);
      },
    },
  };
}

describe("checkpointer (SQLite, fake timers)", () => {
  const fresh = useFreshStore(sqlite);
  let n = 0;
  afterEach(() => vi.useRealTimers());

  async function seeded(lines: number): Promise<string> {
    const batchId = `batch_cp_${n++}`;
    await insertBatch(
      fresh.store,
      testBatch(batchId, { status: "in_progress", total: lines }, { tenantId: "default", expiresAt: 2_000_000_000 }),
    );
    await seedPendingRequests(fresh.store, batchId, lines);
    return batchId;
  }

  const counters = async (batchId: string) =>
    fresh.store.db
      .selectFrom("batches")
      .select(["completed", "input_tokens"])
      .where("id", "=", batchId)
      .executeTakeFirstOrThrow();

  it("holds outcomes for the group delay, then writes them in one transaction", async () => {
    const batchId = await seeded(3);
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const cp = new Checkpointer(fresh.store, HELD_FENCE, { maxDelayMs: 50, maxRows: 100 });
    const groups: number[] = [];
    cp.onCommitted = (_progress, written) => groups.push(written);
    for (const line of [1, 2, 3]) cp.add(verdict(batchId, line));
    await vi.advanceTimersByTimeAsync(49);
    expect(groups).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    await vi.waitFor(() => expect(groups).toEqual([3]));
    expect(Number((await counters(batchId)).completed)).toBe(3);
  });

  it("keeps a group whose transaction failed and retries it with backoff until it is written once", async () => {
    const batchId = await seeded(2);
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const cp = new Checkpointer(failing(fresh.store, 2), HELD_FENCE, { maxDelayMs: 10, maxRows: 100 });
    const errors: unknown[] = [];
    const groups: number[] = [];
    cp.onError = (err) => errors.push(err);
    cp.onCommitted = (_progress, written) => groups.push(written);
    cp.add(verdict(batchId, 1));
    cp.add(verdict(batchId, 2));
    await vi.advanceTimersByTimeAsync(10);
    expect(errors).toHaveLength(1);
    expect(cp.pending).toBe(2); // kept, not dropped
    await vi.advanceTimersByTimeAsync(49); // the first backoff is 50 ms: not yet
    expect(errors).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(errors).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(99); // the second is doubled
    expect(groups).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(groups).toEqual([2]);
    expect(cp.pending).toBe(0);
    const c = await counters(batchId);
    expect([Number(c.completed), Number(c.input_tokens)]).toEqual([2, 2]);
  });
});
