/**
 * The dispatcher and the scheduler on their own: an in-memory claim source (the ClaimSource
 * interface, held-claim semantics), a scripted in-process backend behind the real Router and flow
 * control, and an outcome sink in place of the checkpointer. Asserts outcomes and retries, the
 * round-robin order across batches, and the release path on shutdown (rows never called and calls
 * aborted at the deadline go back to the source, with no outcome), with fake timers for the
 * deadline. Engines that are away: refused calls cost no attempt and write no outcome, their rows
 * wait (parked) while the replica's breaker is open and run once when a probe finds it back; a
 * scattered fault still spends its attempt; a second replica serves while one refuses.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Backend, BackendCall, BackendResult, ProbeResult } from "../../src/backends/backend.js";
import { Router } from "../../src/backends/router.js";
import { Dispatcher } from "../../src/dispatch/dispatcher.js";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "../../src/dispatch/retry-policy.js";
import { RoundRobinPolicy, type SchedulableBatch, Scheduler } from "../../src/dispatch/scheduler.js";
import type { BreakerOptions } from "../../src/flow/circuit-breaker.js";
import { silentLogger } from "../../src/logger.js";
import {
  type ClaimedRequest,
  type ClaimQuery,
  type ClaimSource,
  HELD_FENCE,
  type RowKey,
} from "../../src/store/claims/claim-source.js";
import type { Outcome } from "../../src/store/requests/checkpoint.js";

type Retry = Extract<Outcome, { kind: "retry" }>;
const isRetry = (r: RowKey): r is Retry => (r as { kind?: string }).kind === "retry";

/**
 * Pending rows per batch in memory; held rows are skipped until committed or released. A committed
 * retry puts its row back, due at its time, its attempt counted unless `countsAttempt` is false.
 */
class MemoryClaims implements ClaimSource {
  readonly fence = HELD_FENCE;
  readonly rows = new Map<string, ClaimedRequest[]>();
  readonly held = new Set<string>();
  readonly due = new Map<string, number>();
  readonly released: RowKey[] = [];
  readonly claims: string[] = [];
  /** Every row claimed, with the attempt its claim makes, in claim order. */
  readonly claimed: { batchId: string; line: number; attempt: number }[] = [];

  add(batchId: string, count: number, extra: Record<string, unknown> = {}): void {
    const rows = Array.from({ length: count }, (_, i) => ({
      tenantId: "t",
      batchId,
      line: i + 1,
      customId: `c${i + 1}`,
      model: "m",
      body: JSON.stringify({ model: "m", n: i + 1, ...extra }),
      prefixKey: null,
      attempt: 1,
    }));
    this.rows.set(batchId, rows);
  }

  async claim(q: ClaimQuery): Promise<ClaimedRequest[]> {
    const now = q.nowMs ?? Date.now();
    const free = (this.rows.get(q.batchId) ?? []).filter((r) => {
      const key = `${r.batchId}:${r.line}`;
      return !this.held.has(key) && (this.due.get(key) ?? 0) <= now;
    });
    const taken = free.slice(0, q.limit);
    for (const r of taken) {
      this.held.add(`${r.batchId}:${r.line}`);
      this.claimed.push({ batchId: r.batchId, line: r.line, attempt: r.attempt });
    }
    if (taken.length > 0) this.claims.push(q.batchId);
    return taken.map((r) => ({ ...r }));
  }
  committed(rows: readonly RowKey[]): void {
    for (const r of rows) {
      this.held.delete(`${r.batchId}:${r.line}`);
      if (isRetry(r)) {
        const row = this.rows.get(r.batchId)?.find((x) => x.line === r.line);
        if (row !== undefined && r.countsAttempt !== false) row.attempt++;
        this.due.set(`${r.batchId}:${r.line}`, r.nextAttemptMs);
        continue;
      }
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

/**
 * A backend that answers each call with what `script` says (or hangs until aborted); with `up`,
 * it has a probe that answers while `up()` says so, counted in `probes`.
 */
function scripted(
  script: (call: BackendCall, n: number) => BackendResult | "hang",
  options: { name?: string; up?: () => boolean } = {},
): Backend & { calls: BackendCall[]; probes: number } {
  const calls: BackendCall[] = [];
  const { up } = options;
  const backend: Backend & { calls: BackendCall[]; probes: number } = {
    name: options.name ?? "scripted",
    maxConcurrency: 4,
    calls,
    probes: 0,
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
  if (up !== undefined) {
    backend.probe = async (): Promise<ProbeResult> => {
      backend.probes++;
      return up() ? { ok: true, status: 200 } : { ok: false, cause: "ECONNREFUSED" };
    };
  }
  return backend;
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

/** What the HTTP backend returns when nothing listens: the call never reached an engine. */
const refused: BackendResult = {
  kind: "failure",
  code: "connection_error",
  message: "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9",
  retryable: true,
  unreached: true,
};
/** A connection reset mid-call: it may have reached the engine. */
const reset: BackendResult = {
  kind: "failure",
  code: "connection_error",
  message: "ECONNRESET: other side closed",
  retryable: true,
};

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

/** How long a test waits for an event before it fails (the events come in milliseconds). */
const WAIT = { timeout: 10_000 };
/** Probes a few ms apart: an open breaker finds its engine back promptly in these tests. */
const FAST_PROBES: Partial<BreakerOptions> = { minProbeMs: 5, maxProbeMs: 20 };

/** A dispatcher over `backends` (replicas of one pool routing every model), in that order. */
function setup(
  backends: Backend | Backend[],
  claims = new MemoryClaims(),
  options: { breaker?: Partial<BreakerOptions>; retry?: Partial<RetryPolicy> } = {},
) {
  const replicas = Array.isArray(backends) ? backends : [backends];
  const outcomes: Outcome[] = [];
  const router = new Router(
    [
      {
        patterns: ["*"],
        backends: replicas.map((_, i) => ({ engine: "openai" as const, url: `http://scripted-${i}.invalid/v1` })),
      },
    ],
    async (spec) => replicas[Number(/scripted-(\d+)/.exec((spec as { url: string }).url)?.[1])] as Backend,
    {},
    options.breaker,
  );
  const scheduler = new Scheduler(claims, new RoundRobinPolicy());
  const dispatcher = new Dispatcher(
    { router, scheduler, claims, checkpointer: { add: (o) => outcomes.push(o) }, logger: silentLogger },
    { retry: { ...DEFAULT_RETRY_POLICY, maxAttempts: 3, ...options.retry }, maxClaim: 64, maxWindow: 256 },
  );
  // As the worker does: a replica back on probation or serving again wakes the claimer.
  const health: string[] = [];
  router.onHealthChange = (change) => {
    health.push(change.state);
    if (change.state !== "open") dispatcher.poke();
  };
  // Outcomes are committed at once, as the checkpointer would after a group commit (each once).
  let committed = 0;
  const commitNew = () => {
    dispatcher.committed(outcomes.slice(committed));
    committed = outcomes.length;
  };
  const sink = {
    outcomes,
    async settle(n: number) {
      await vi.waitFor(() => expect(outcomes.length).toBeGreaterThanOrEqual(n), { timeout: 10_000 });
      commitNew();
    },
    /** Commits outcomes as they come (retries come back) until `done` holds. */
    async until(done: () => boolean) {
      await vi.waitFor(
        () => {
          commitNew();
          expect(done()).toBe(true);
        },
        { timeout: 10_000 },
      );
    },
  };
  return { dispatcher, claims, sink, router, health };
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

describe("dispatcher with an engine that is away", () => {
  const lines = (rows: readonly RowKey[]) => rows.map((r) => r.line).sort((a, b) => a - b);
  const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

  it("parks the rows of an engine that refuses: no outcome, the breaker opens, the batch waits; once back, each row runs once", async () => {
    let up = false;
    const backend = scripted((c) => (up ? ok(c) : refused), { up: () => up });
    const { dispatcher, claims, sink, router, health } = setup(backend, undefined, { breaker: FAST_PROBES });
    claims.add("b1", 200);
    dispatcher.setActiveBatches([batch("b1")]);

    await vi.waitFor(() => expect(health).toEqual(["open"]), WAIT);
    const breaker = router.replicas()[0]?.breaker;
    expect(breaker?.failuresInARow).toBeGreaterThanOrEqual(5); // the default threshold
    await vi.waitFor(() => expect(backend.probes).toBeGreaterThanOrEqual(2), WAIT);
    const refusedCalls = backend.calls.length;
    const claimsWhileDown = claims.claims.length;
    await vi.waitFor(() => expect(backend.probes).toBeGreaterThanOrEqual(5), WAIT);
    // While it is open: no calls, no claims of its batch, no outcome; the batch is waiting since the outage.
    expect(backend.calls.length).toBe(refusedCalls);
    expect(claims.claims.length).toBe(claimsWhileDown);
    expect(sink.outcomes).toEqual([]);
    expect(claims.released).toEqual([]);
    expect(dispatcher.waitingBatches()).toEqual(new Map([["b1", breaker?.downSinceMs]]));

    up = true;
    await sink.settle(200);
    await vi.waitFor(() => expect(dispatcher.inFlightCount).toBe(0), WAIT);
    expect(sink.outcomes).toHaveLength(200);
    expect(sink.outcomes.every((o) => o.kind === "succeeded")).toBe(true);
    expect(lines(sink.outcomes)).toEqual(oneTo(200));
    // Each row was sent once after the engine came back, and none had spent an attempt.
    expect(backend.calls.length - refusedCalls).toBe(200);
    expect(claims.claimed.every((c) => c.attempt === 1)).toBe(true);
    expect(health).toEqual(["open", "half-open", "closed"]);
    expect(dispatcher.waitingBatches().size).toBe(0);
    await dispatcher.stop(1000);
    await router.close();
  });

  it("spends the attempt of a scattered fault among good answers, as before, and keeps the breaker closed", async () => {
    const backend = scripted((c, n) => (n === 3 || n === 9 ? reset : ok(c)), { up: () => true });
    const { dispatcher, claims, sink, router, health } = setup(backend, undefined, {
      breaker: FAST_PROBES,
      retry: { baseDelayMs: 5, maxDelayMs: 10 },
    });
    claims.add("b1", 20);
    dispatcher.setActiveBatches([batch("b1")]);
    await sink.settle(20);
    const retries = sink.outcomes.filter(isRetry);
    expect(retries).toHaveLength(2);
    for (const r of retries) expect(r.countsAttempt).not.toBe(false);
    // The retried rows came back with their attempt counted, then succeeded.
    await sink.settle(22);
    const retried = new Set(retries.map((r) => r.line));
    expect(claims.claimed.filter((c) => retried.has(c.line)).map((c) => c.attempt)).toEqual([1, 1, 2, 2]);
    const verdicts = sink.outcomes.filter((o) => o.kind !== "retry");
    expect(verdicts.every((o) => o.kind === "succeeded")).toBe(true);
    expect(lines(verdicts)).toEqual(oneTo(20));
    expect(health).toEqual([]);
    expect(router.replicas()[0]?.breaker.state).toBe("closed");
    await dispatcher.stop(1000);
    await router.close();
  });

  it("spends one attempt on a 503 storm (its first call), none on the calls after it; once back, every row runs", async () => {
    let up = false;
    const backend = scripted((c) => (up ? ok(c) : status(503)), { up: () => up });
    const { dispatcher, claims, sink, router, health } = setup(backend, undefined, {
      breaker: FAST_PROBES,
      retry: { baseDelayMs: 5, maxDelayMs: 10 },
    });
    claims.add("b1", 50);
    dispatcher.setActiveBatches([batch("b1")]);
    await vi.waitFor(() => expect(health).toEqual(["open"]), WAIT);
    await vi.waitFor(() => expect(backend.probes).toBeGreaterThanOrEqual(2), WAIT);
    // The first 503 could be the line's own: it is retried as usual. The rest of the run waits.
    const spent = sink.outcomes.filter(isRetry);
    expect(sink.outcomes).toEqual(spent);
    expect(spent).toHaveLength(1);
    expect(spent[0]?.countsAttempt).not.toBe(false);
    up = true;
    await sink.until(() => sink.outcomes.filter((o) => o.kind === "succeeded").length === 50);
    expect(lines(sink.outcomes.filter((o) => o.kind === "succeeded"))).toEqual(oneTo(50));
    expect(claims.claimed.filter((c) => c.attempt > 1).map((c) => c.line)).toEqual([spent[0]?.line]);
    await dispatcher.stop(1000);
    await router.close();
  });

  it("hands parked rows back on shutdown, with no outcome", async () => {
    const backend = scripted(() => refused, { up: () => false });
    const { dispatcher, claims, sink, router, health } = setup(backend, undefined, { breaker: FAST_PROBES });
    claims.add("b1", 50);
    dispatcher.setActiveBatches([batch("b1")]);
    await vi.waitFor(() => expect(health).toEqual(["open"]), WAIT);
    await vi.waitFor(() => expect(dispatcher.inFlightCount).toBe(0), WAIT);
    await dispatcher.stop(1000);
    expect(sink.outcomes).toEqual([]);
    expect(lines(claims.released)).toEqual(lines(claims.claimed));
    expect(claims.held.size).toBe(0);
    await router.close();
  });

  it("never cuts a long answer forever: a line cut at its learned budget gets more room until it is answered", async () => {
    // Answers of the first batch were instant: the learned budget is the floor (5 s), doubled per
    // attempt. A long answer needs 12 s: the scripted engine answers it only when given that long,
    // and otherwise returns what the HTTP backend returns when it cuts a call at its budget.
    const backend = scripted(
      (c) => {
        const budget = c.budgetMs?.();
        if (JSON.parse(c.body).long !== true || budget === undefined || budget >= 12_000) return ok(c);
        return { kind: "failure", code: "timeout", message: `No answer within ${budget} ms.`, retryable: true };
      },
      { up: () => true },
    );
    const { dispatcher, claims, sink, router } = setup(backend, undefined, {
      breaker: FAST_PROBES,
      retry: { baseDelayMs: 5, maxDelayMs: 10 },
    });
    claims.add("short", 20);
    dispatcher.setActiveBatches([batch("short")]);
    await sink.settle(20);
    expect(router.replicas()[0]?.timeout.budget(undefined, 1)).toBe(5_000);
    claims.add("long", 3, { long: true });
    dispatcher.setActiveBatches([batch("long")]);
    const answered = () => sink.outcomes.filter((o) => o.batchId === "long" && o.kind === "succeeded");
    await sink.until(() => answered().length === 3);
    expect(lines(answered())).toEqual([1, 2, 3]);
    expect(sink.outcomes.filter((o) => o.batchId === "long" && o.kind === "failed")).toEqual([]);
    // Each was answered on its third attempt (5 s, 10 s, then 20 s of room).
    const last = new Map(claims.claimed.filter((c) => c.batchId === "long").map((c) => [c.line, c.attempt]));
    expect([...last.values()]).toEqual([3, 3, 3]);
    await dispatcher.stop(1000);
    await router.close();
  });

  it("serves every row from the other replica while one refuses, spending no attempt on the refusals", async () => {
    const refusing = scripted(() => refused, { name: "refusing", up: () => false });
    const serving = scripted((c) => ok(c), { name: "serving", up: () => true });
    const { dispatcher, claims, sink, router } = setup([refusing, serving], undefined, { breaker: FAST_PROBES });
    claims.add("b1", 100);
    dispatcher.setActiveBatches([batch("b1")]);
    await sink.settle(100);
    expect(sink.outcomes).toHaveLength(100);
    expect(sink.outcomes.every((o) => o.kind === "succeeded")).toBe(true);
    expect(lines(sink.outcomes)).toEqual(oneTo(100));
    expect(serving.calls).toHaveLength(100);
    expect(refusing.calls.length).toBeGreaterThanOrEqual(5); // it was tried, then left out
    const [down, up] = router.replicas();
    expect([down?.breaker.state, up?.breaker.state]).toEqual(["open", "closed"]);
    expect(claims.claimed.every((c) => c.attempt === 1)).toBe(true);
    // The pool kept a replica taking calls: its batch never waited.
    expect(dispatcher.waitingBatches().size).toBe(0);
    await dispatcher.stop(1000);
    await router.close();
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
