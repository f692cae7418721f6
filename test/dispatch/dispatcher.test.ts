/**
 * The dispatcher and the scheduler on their own: an in-memory claim source (the ClaimSource
 * interface, held-claim semantics), a scripted in-process backend behind the real Router and flow
 * control, and an outcome sink in place of the checkpointer. Asserts outcomes and retries, the
 * round-robin order across batches, and the release path on shutdown (rows never called and calls
 * aborted at the deadline go back to the source, with no outcome), with fake timers for the
 * deadline.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Backend, BackendCall, BackendResult } from "../../src/backends/backend.js";
import { Router } from "../../src/backends/router.js";
import { Dispatcher } from "../../src/dispatch/dispatcher.js";
import { DEFAULT_RETRY_POLICY } from "../../src/dispatch/retry-policy.js";
import { RoundRobinPolicy, type SchedulableBatch, Scheduler } from "../../src/dispatch/scheduler.js";
import { silentLogger } from "../../src/logger.js";
import {
  type ClaimedRequest,
  type ClaimQuery,
  type ClaimSource,
  HELD_FENCE,
  type RowKey,
} from "../../src/store/claims/claim-source.js";
import type { Outcome } from "../../src/store/requests/checkpoint.js";

/** Pending rows per batch in memory; held rows are skipped until committed or released. */
class MemoryClaims implements ClaimSource {
  readonly fence = HELD_FENCE;
  readonly rows = new Map<string, ClaimedRequest[]>();
  readonly held = new Set<string>();
  readonly released: RowKey[] = [];
  readonly claims: string[] = [];

  add(batchId: string, count: number): void {
    const rows = Array.from({ length: count }, (_, i) => ({
      tenantId: "t",
      batchId,
      line: i + 1,
      customId: `c${i + 1}`,
      model: "m",
      body: JSON.stringify({ model: "m", n: i + 1 }),
      prefixKey: null,
      attempt: 1,
    }));
    this.rows.set(batchId, rows);
  }

  async claim(q: ClaimQuery): Promise<ClaimedRequest[]> {
    const free = (this.rows.get(q.batchId) ?? []).filter((r) => !this.held.has(`${r.batchId}:${r.line}`));
    const taken = free.slice(0, q.limit);
    for (const r of taken) this.held.add(`${r.batchId}:${r.line}`);
    if (taken.length > 0) this.claims.push(q.batchId);
    return taken;
  }
  committed(rows: readonly RowKey[]): void {
    for (const r of rows) {
      this.held.delete(`${r.batchId}:${r.line}`);
      const list = this.rows.get(r.batchId) ?? [];
      this.rows.set(
        r.batchId,
        list.filter((x) => x.line !== r.line),
      );
    }
  }
  async release(rows: readonly RowKey[]): Promise<void> {
    this.released.push(...rows);
    for (const r of rows) this.held.delete(`${r.batchId}:${r.line}`);
  }
  forgetBatch(): void {}
  async recover(): Promise<number> {
    return 0;
  }
  async upkeep(): Promise<number> {
    return 0;
  }
  async drain(): Promise<void> {}
}

/** A backend that answers each call with what `script` says (or hangs until aborted). */
function scripted(
  script: (call: BackendCall, n: number) => BackendResult | "hang",
): Backend & { calls: BackendCall[] } {
  const calls: BackendCall[] = [];
  return {
    name: "scripted",
    maxConcurrency: 4,
    calls,
    async call(call) {
      calls.push(call);
      const answer = script(call, calls.length);
      if (answer !== "hang") return answer;
      return new Promise((resolve) => {
        call.signal.addEventListener("abort", () =>
          resolve({ kind: "failure", code: "aborted", message: "aborted", retryable: true }),
        );
      });
    },
    async close() {},
  };
}

const ok = (call: BackendCall): BackendResult => ({
  kind: "response",
  status: 200,
  bodyText: `{"echo":${call.body}}`,
  requestId: null,
  usage: null,
  retryAfterMs: null,
});
const status = (code: number): BackendResult => ({
  kind: "response",
  status: code,
  bodyText: "{}",
  requestId: null,
  usage: null,
  retryAfterMs: null,
});

const batch = (id: string): SchedulableBatch => ({
  id,
  tenantId: "t",
  endpoint: "/v1/chat/completions",
  deadlineMs: Number.MAX_SAFE_INTEGER,
  priority: 0,
  createdAtMs: 0,
  model: "m",
  routeCost: null,
});

function setup(backend: Backend, claims = new MemoryClaims()) {
  const outcomes: Outcome[] = [];
  const router = new Router(
    [{ patterns: ["*"], backends: [{ engine: "openai", url: "http://scripted.invalid/v1" }] }],
    async () => backend,
  );
  const scheduler = new Scheduler(claims, new RoundRobinPolicy());
  const dispatcher = new Dispatcher(
    { router, scheduler, claims, checkpointer: { add: (o) => outcomes.push(o) }, logger: silentLogger },
    { retry: { ...DEFAULT_RETRY_POLICY, maxAttempts: 3 }, maxClaim: 64, maxWindow: 256 },
  );
  // Outcomes are committed at once, as the checkpointer would after a group commit.
  const sink = {
    outcomes,
    async settle(n: number) {
      await vi.waitFor(() => expect(outcomes.length).toBeGreaterThanOrEqual(n), { timeout: 10_000 });
      dispatcher.committed(outcomes);
    },
  };
  return { dispatcher, claims, sink, router };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("dispatcher", () => {
  it("runs every claimed row once and reports its outcome with the engine's answer", async () => {
    const backend = scripted((c) => ok(c));
    const { dispatcher, claims, sink } = setup(backend);
    claims.add("b1", 5);
    dispatcher.setActiveBatches([batch("b1")]);
    await sink.settle(5);
    expect(sink.outcomes.map((o) => [o.line, o.kind])).toEqual([1, 2, 3, 4, 5].map((l) => [l, "succeeded"]));
    const first = sink.outcomes[0] as Extract<Outcome, { result: string | null }>;
    expect(first.result).toBe(`{"echo":${JSON.stringify({ model: "m", n: 1 })}}`);
    expect(backend.calls).toHaveLength(5);
    await dispatcher.stop(1000);
  });

  it("turns a retryable answer into a retry with a due time and a 4xx into a final failure", async () => {
    const backend = scripted((c) => (JSON.parse(c.body).n === 1 ? status(500) : status(400)));
    const { dispatcher, claims, sink } = setup(backend);
    claims.add("b1", 2);
    const before = Date.now();
    dispatcher.setActiveBatches([batch("b1")]);
    await sink.settle(2);
    const byLine = new Map(sink.outcomes.map((o) => [o.line, o]));
    const retry = byLine.get(1);
    expect(retry?.kind).toBe("retry");
    expect(retry?.kind === "retry" && retry.nextAttemptMs).toBeGreaterThan(before);
    expect(byLine.get(2)).toMatchObject({ kind: "failed", responseStatus: 400 });
    await dispatcher.stop(1000);
  });

  it("claims round-robin across batches: a small batch is not queued behind a large one", async () => {
    const backend = scripted((c) => ok(c));
    const claims = new MemoryClaims();
    const { dispatcher, sink } = setup(backend, claims);
    claims.add("big", 300);
    claims.add("small", 3);
    dispatcher.setActiveBatches([batch("big"), batch("small")]);
    await sink.settle(303);
    // The second claim already went to the small batch, whatever the big one still had.
    expect(claims.claims.slice(0, 2)).toEqual(["big", "small"]);
    await dispatcher.stop(1000);
  });

  it("on shutdown hands back rows never called and calls still running at the deadline, with no outcome", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const backend = scripted(() => "hang");
    const { dispatcher, claims, sink } = setup(backend);
    claims.add("b1", 10);
    dispatcher.setActiveBatches([batch("b1")]);
    await vi.waitFor(() => expect(backend.calls.length).toBeGreaterThan(0));
    const called = backend.calls.length;
    const stopping = dispatcher.stop(5_000);
    await vi.advanceTimersByTimeAsync(5_000);
    await vi.advanceTimersByTimeAsync(100);
    await stopping;
    expect(sink.outcomes).toEqual([]);
    expect(backend.calls.every((c) => c.signal.aborted)).toBe(true);
    expect(claims.released.map((r) => r.line).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 10 }, (_, i) => i + 1),
    );
    expect(called).toBeLessThan(10); // the flow controller's limit: some were buffered, never called
  });
});

describe("scheduler", () => {
  it("asks its policy in order and stops at the first batch with rows due", async () => {
    const claims = new MemoryClaims();
    claims.add("a", 2);
    claims.add("c", 2);
    const scheduler = new Scheduler(claims, new RoundRobinPolicy(), () => 1_000);
    scheduler.setBatches([batch("a"), batch("b"), batch("c")]);
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      const got = await scheduler.next(1);
      order.push(got?.batch.id ?? "none");
    }
    expect(order).toEqual(["a", "c", "a", "c"]);
    expect(await scheduler.next(1)).toBeUndefined();
  });
});
