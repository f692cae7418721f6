/**
 * The dispatcher: claim → route → call → checkpoint, with a bounded in-flight window.
 *
 * It keeps a small local buffer of claimed rows (never more than about twice what the backends
 * currently accept), asks the scheduler (./scheduler.ts) for more when there is room — the
 * scheduler alone decides which batches and rows come next — hands each row to the least-loaded
 * replica of its model's pool when that replica's flow controller has room, and queues every
 * outcome on the group-commit checkpointer. Calls share one AbortController per batch (a
 * controller per call cost as much as a fast call): a cancel or an expiry aborts the batch's,
 * shutdown aborts them all.
 *
 * Of the claim source (store/claims/claim-source.ts) it sees only what the scheduler claims,
 * `committed` (outcomes written: stop holding those rows) and `release` (rows handed back on
 * shutdown); whether claims are leased or held is the source's business.
 *
 * Engines that are away (outage.ts): an outage-class result feeds the replica's circuit breaker;
 * a call that never reached an engine, or one that failed in a run of outage results, does not
 * spend the line's attempt: the row goes back to the front of its pool's queue, where it waits
 * (parked) while no replica of the pool takes calls. Parked rows do not count against the claim
 * window, batches routed to a down pool are not claimed from, and past PARK_LIMIT rows a pool's
 * overflow is handed back to the store, due again in DEFER_MS, its attempt not counted.
 */
import { setMaxListeners } from "node:events";
import type { BackendResult } from "../backends/backend.js";
import type { BackendPool, Replica, Router } from "../backends/router.js";
import { maxTokensOf } from "../flow/call-timeout.js";
import type { Logger } from "../logger.js";
import type { ClaimedRequest, ClaimSource, RowKey } from "../store/claims/claim-source.js";
import type { Outcome } from "../store/requests/checkpoint.js";
import { FailureSummary } from "./failure-summary.js";
import { outageCause } from "./outage.js";
import { decide, type RetryPolicy } from "./retry-policy.js";
import type { SchedulableBatch, Scheduler } from "./scheduler.js";

export interface DispatcherOptions {
  retry: RetryPolicy;
  /** Most rows claimed per claim query. */
  maxClaim: number;
  /** Upper bound on rows held locally (buffered + in flight). */
  maxWindow: number;
}

/**
 * Rows held locally (buffered + in flight) are at least this many, so that claims can be large;
 * a buffered row costs nothing upstream, and on a crash it is re-leased without having been called.
 */
const MIN_WINDOW = 256;
/** Fewest rows a claim asks for (unless the window is smaller). */
const MIN_CLAIM = 128;
/** Most rows parked in the queue of a pool that is down; more go back to the store. */
export const PARK_LIMIT = 1024;
/** When rows handed back from a down pool's overflow are due again. */
const DEFER_MS = 5_000;

/** A claimed row on its way to a backend. */
type Work = ClaimedRequest & {
  endpoint: string;
  /** Calls that failed in an outage without spending an attempt (bounded: FREE_OUTAGE_RETRIES). */
  freeRetries?: number;
};

/**
 * Calls a line may lose to an outage without spending an attempt, when the engine answered them
 * (resets, 502/503/504, hung calls). A call that could not be made at all (refused, DNS) never
 * spends one. The bound is for a line that crashes its engine each time: it still fails, after
 * its attempts, instead of taking the engine down until the window ends.
 */
const FREE_OUTAGE_RETRIES = 3;

interface InFlight {
  batchId: string;
  /** Why we aborted it ourselves: decides what is written for the row. */
  abortedFor?: "shutdown" | "batch";
  req: Work;
  pool: BackendPool;
  /** The replica of the first call (its latency decides when a hedge is due). */
  replica: Replica;
  started: number;
  /** Calls of this row still out: 2 once hedged, until one answers. */
  calls: number;
  hedged: boolean;
  /** The row's outcome is taken: later answers (a hedge's partner) are dropped. */
  settled: boolean;
  /**
   * The first call ran past `hedgeAfter`: it no longer counts against its replica's flow limit
   * (a hung call holds no engine slot; counting it starved the engine of ~12 of 32 slots under
   * 2% hangs, bench/faults.ts).
   */
  flowFreed: boolean;
}

/** How often in-flight calls are looked at for a hedge. */
const HEDGE_SWEEP_MS = 250;

/** Where outcomes go: the group-commit checkpointer (./checkpointer.ts). */
export interface OutcomeSink {
  add(outcome: Outcome): void;
}

export interface DispatcherParts {
  router: Router;
  scheduler: Scheduler;
  claims: ClaimSource;
  checkpointer: OutcomeSink;
  logger: Logger;
}

export class Dispatcher {
  readonly #router: Router;
  readonly #scheduler: Scheduler;
  readonly #claims: ClaimSource;
  readonly #checkpointer: OutcomeSink;
  readonly #logger: Logger;
  readonly #o: DispatcherOptions;
  readonly #queues = new Map<BackendPool, Work[]>();
  readonly #resolving = new Set<Promise<void>>();
  #buffered = 0;
  readonly #inFlight = new Map<string, InFlight>();
  readonly #aborts = new Map<string, AbortController>();
  #claiming = false;
  #stopped = false;
  #idleWaiters: (() => void)[] = [];
  #nothingToClaimUntil = 0;
  /** Rows handed back on shutdown (never called, or aborted), released when the calls are done. */
  readonly #released: RowKey[] = [];
  /** Failed calls, summarised in one log line every few seconds (never a line per call). */
  readonly #failures: FailureSummary;
  #hedgeTimer: NodeJS.Timeout | undefined;

  constructor(parts: DispatcherParts, options: DispatcherOptions) {
    this.#router = parts.router;
    this.#scheduler = parts.scheduler;
    this.#claims = parts.claims;
    this.#checkpointer = parts.checkpointer;
    this.#logger = parts.logger;
    this.#o = options;
    this.#failures = new FailureSummary(parts.logger);
  }

  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  /** Replaces the set of batches to claim from (in_progress batches, oldest first). */
  setActiveBatches(batches: SchedulableBatch[]): void {
    const before = this.#scheduler.batches;
    this.#scheduler.setBatches(batches);
    this.#nothingToClaimUntil = 0;
    const active = new Set(batches.map((b) => b.id));
    // A batch that ended with only hedges' dropped partners still out: stop those calls.
    const unsettled = new Set<string>();
    const stale = new Set<string>();
    for (const f of this.#inFlight.values()) (f.settled ? stale : unsettled).add(f.batchId);
    for (const id of stale) if (!active.has(id) && !unsettled.has(id)) this.abortBatch(id);
    const local = this.batchesInFlight();
    // A batch that left the set with nothing of it here: the source forgets its claim state.
    for (const b of before) if (!active.has(b.id) && !local.has(b.id)) this.#claims.forgetBatch(b.id);
    // A finished batch's controller goes once none of its calls is left (one per batch, not a leak).
    if (this.#aborts.size > batches.length) {
      for (const id of this.#aborts.keys()) if (!active.has(id) && !local.has(id)) this.#aborts.delete(id);
    }
    this.pump();
  }

  /** Wakes the claimer now (a batch started, a retry became due). */
  poke(): void {
    this.#nothingToClaimUntil = 0;
    this.#blocked.clear();
    this.pump();
  }

  /** Drops local work for a batch and aborts its in-flight calls (cancel, expiry). */
  abortBatch(batchId: string): void {
    for (const [key, f] of this.#inFlight) {
      if (f.batchId === batchId) {
        f.abortedFor = "batch";
        this.#inFlight.delete(key);
      }
    }
    this.#aborts.get(batchId)?.abort();
    this.#aborts.delete(batchId);
    for (const [pool, queue] of this.#queues) {
      const kept = queue.filter((r) => r.batchId !== batchId);
      this.#buffered -= queue.length - kept.length;
      this.#queues.set(pool, kept);
    }
    this.#scheduler.drop(batchId);
    // Its rows are made terminal by the batch job: nothing of its claims is left to count.
    this.#claims.forgetBatch(batchId);
  }

  /** Outcomes the checkpointer committed: the claim source stops holding their rows. */
  committed(outcomes: readonly Outcome[]): void {
    this.#claims.committed(outcomes);
  }

  batchesInFlight(): Set<string> {
    const ids = new Set<string>();
    for (const f of this.#inFlight.values()) ids.add(f.batchId);
    for (const q of this.#queues.values()) for (const r of q) ids.add(r.batchId);
    return ids;
  }

  /** Moves work forward: start calls where backends have room, then top up the buffer. */
  pump(): void {
    if (this.#stopped) return;
    for (const [pool, queue] of this.#queues) {
      while (queue.length > 0) {
        const replica = pool.pick();
        if (replica === undefined) break;
        const req = queue.shift() as Work;
        this.#buffered--;
        this.#start(req, replica, pool);
      }
    }
    this.#maybeClaim();
  }

  #window(): number {
    let capacity = 0;
    for (const pool of this.#queues.keys()) capacity += pool.capacity();
    return Math.min(this.#o.maxWindow, Math.max(MIN_WINDOW, capacity * 2));
  }

  #maybeClaim(): void {
    if (this.#claiming || this.#stopped || this.#scheduler.batches.length === 0) return;
    if (Date.now() < this.#nothingToClaimUntil) return;
    const room = this.#window() - (this.#buffered - this.#parked()) - this.#inFlight.size;
    // Claim in sizeable chunks: a claim's fixed cost is worth ~50 rows' (SQLite: ~0.3 ms, then
    // ~6 µs a row), and small claims at high rates were the pipeline's largest cost.
    if (room < Math.min(MIN_CLAIM, this.#window() / 2)) return;
    this.#claiming = true;
    void this.#claim(Math.min(room, this.#o.maxClaim))
      .catch((err: unknown) => this.#logger.error("claim failed", { error: err as Error }))
      .finally(() => {
        this.#claiming = false;
        this.pump();
      });
  }

  /** Rows waiting in the queues of pools with no replica taking calls. */
  #parked(): number {
    let n = 0;
    for (const [pool, queue] of this.#queues) if (!pool.healthy) n += queue.length;
    return n;
  }

  /**
   * Whether a batch's rows can go anywhere now: not when its one model's pool is down, nor for a
   * while after a claim of it found only down pools (a batch of several models names none: its
   * rows would be claimed and handed back in a loop).
   */
  #claimable = (batch: SchedulableBatch): boolean => {
    const until = this.#blocked.get(batch.id);
    if (until !== undefined) {
      if (Date.now() < until) return false;
      this.#blocked.delete(batch.id);
    }
    return batch.model === null || this.#router.readyPool(batch.model)?.healthy !== false;
  };
  /** Batches whose last claim found only down pools: not claimed from until then (ms). */
  readonly #blocked = new Map<string, number>();

  /**
   * Batches waiting for an engine: rows parked in a down pool, or their one model's pool down. The
   * value is since when (ms) the pool has been down.
   */
  waitingBatches(): Map<string, number> {
    const waiting = new Map<string, number>();
    for (const [pool, queue] of this.#queues) {
      const since = pool.downSinceMs();
      if (since === null) continue;
      for (const r of queue) if (!waiting.has(r.batchId)) waiting.set(r.batchId, since);
    }
    for (const b of this.#scheduler.batches) {
      const since = b.model === null ? null : (this.#router.readyPool(b.model)?.downSinceMs() ?? null);
      if (since !== null && !waiting.has(b.id)) waiting.set(b.id, since);
    }
    return waiting;
  }

  async #claim(limit: number): Promise<void> {
    const work = await this.#scheduler.next(limit, this.#claimable);
    if (work !== undefined) {
      let routable = 0;
      for (const r of work.rows) {
        if (this.#router.readyPool(r.model)?.healthy !== false) routable++;
        this.#route({ ...r, endpoint: work.batch.endpoint });
      }
      if (routable === 0) this.#blocked.set(work.batch.id, Date.now() + DEFER_MS);
      return;
    }
    // Nothing claimable anywhere (all running, or retries not yet due): look again shortly.
    this.#nothingToClaimUntil = Date.now() + 200;
    setTimeout(() => this.pump(), 210).unref();
  }

  #route(req: Work): void {
    const ready = this.#router.readyPool(req.model);
    if (ready !== undefined) {
      this.#enqueue(ready, req);
      return;
    }
    const poolPromise = this.#router.pool(req.model);
    if (poolPromise === undefined) {
      this.#finish(req, {
        kind: "failure",
        code: "model_not_found",
        message: `No backend is configured for model '${req.model}'. Add a route for it (--config) or a default --backend.`,
        retryable: false,
      });
      return;
    }
    this.#buffered++;
    const task = poolPromise.then(
      (pool) => {
        this.#buffered--;
        this.#enqueue(pool, req);
      },
      (err: unknown) => {
        this.#buffered--;
        this.#finish(req, {
          kind: "failure",
          code: (err as { code?: string }).code ?? "backend_unavailable",
          message: `The backend for model '${req.model}' could not start: ${(err as Error).message}`,
          retryable: false,
        });
      },
    );
    this.#resolving.add(task);
    void task.finally(() => {
      this.#resolving.delete(task);
      this.pump();
    });
  }

  /**
   * Queues a claimed row for its pool (at the front: a row whose call could not be made); the
   * caller pumps. A down pool holds at most PARK_LIMIT rows: the rest go back to the store.
   */
  #enqueue(pool: BackendPool, req: Work, front = false): void {
    let q = this.#queues.get(pool);
    if (q === undefined) {
      q = [];
      this.#queues.set(pool, q);
    }
    if (!pool.healthy && q.length >= PARK_LIMIT) {
      this.#checkpointer.add({
        kind: "retry",
        batchId: req.batchId,
        line: req.line,
        nextAttemptMs: Date.now() + DEFER_MS,
        countsAttempt: false,
      });
      return;
    }
    if (front) q.unshift(req);
    else q.push(req);
    this.#buffered++;
  }

  /**
   * Tail hedging: a call running past its replica's `hedgeAfter` while nothing else waits for the
   * pool and a replica has room gets a second copy; the first answer wins and the other is
   * dropped when it comes. At a batch's tail an engine with free slots would otherwise sit idle
   * while the last hung calls wait out their budget (bench/faults.ts: the tail was half the run).
   * Mid-batch the queue is never empty, so nothing is hedged; a duplicate call costs what a
   * retry would, on paid routes too, and only for calls already far past the usual latency.
   */
  #hedge(): void {
    const now = performance.now();
    for (const e of this.#inFlight.values()) {
      if (e.hedged || e.settled || e.abortedFor !== undefined) continue;
      const after = e.replica.timeout.hedgeAfter();
      if (after === undefined || now - e.started < after) continue;
      if (!e.flowFreed) {
        e.flowFreed = true;
        e.replica.flow.release("error", 0, 0);
      }
      if ((this.#queues.get(e.pool)?.length ?? 0) > 0) continue;
      const replica = e.pool.pick();
      if (replica === undefined) continue;
      e.hedged = true;
      this.#start(e.req, replica, e.pool, e);
    }
  }

  #start(req: Work, replica: Replica, pool: BackendPool, hedgeOf?: InFlight): void {
    const { backend, flow, breaker } = replica;
    const key = `${req.batchId}:${req.line}`;
    let entry = hedgeOf;
    if (entry === undefined) {
      entry = {
        batchId: req.batchId,
        req,
        pool,
        replica,
        started: performance.now(),
        calls: 0,
        hedged: false,
        settled: false,
        flowFreed: false,
      };
      this.#inFlight.set(key, entry);
    }
    const e = entry;
    const firstCall = hedgeOf === undefined;
    e.calls++;
    this.#hedgeTimer ??= setInterval(() => this.#hedge(), HEDGE_SWEEP_MS).unref();
    let abort = this.#aborts.get(req.batchId);
    if (abort === undefined) {
      abort = new AbortController();
      // Every call of the batch listens to it (backends add one listener per call): many by design.
      setMaxListeners(0, abort.signal);
      this.#aborts.set(req.batchId, abort);
    }
    flow.acquire();
    const started = performance.now();
    const maxTokens = maxTokensOf(req.body);
    const budgetMs = () => replica.timeout.budget(maxTokens, req.attempt);
    void backend
      .call({ endpoint: req.endpoint, body: req.body, model: req.model, signal: abort.signal, budgetMs })
      .catch(
        (err: unknown): BackendResult => ({
          kind: "failure",
          code: "backend_error",
          message: (err as Error).message,
          retryable: true,
        }),
      )
      .then((result) => {
        const latency = performance.now() - started;
        // A timeout is a hung call (learned budgets) or a lost one, not a queue: it is no overload.
        const overload = result.kind === "response" && (result.status === 429 || result.status === 503);
        const ok = result.kind === "response" && result.status < 300;
        const outputTokens = result.kind === "response" ? (result.usage?.outputTokens ?? 0) : 0;
        if (!(firstCall && e.flowFreed))
          flow.release(overload ? "overload" : ok ? "ok" : "error", latency, outputTokens);
        if (ok) replica.timeout.observe(latency, outputTokens);
        e.calls--;
        // A hedged row: a failure while its partner is still out waits for the partner; once one
        // answer is taken, the other is dropped.
        if (e.abortedFor === undefined && !e.settled && !ok && e.calls > 0) return;
        const first = !e.settled;
        e.settled = true;
        if (e.calls === 0 && this.#inFlight.get(key) === e) this.#inFlight.delete(key);
        if (!first || e.abortedFor === "batch") {
          // The batch job already made the row terminal, or the partner's answer was taken.
          this.#notifyIdle();
          this.pump();
          return;
        }
        if (e.abortedFor === "shutdown") {
          this.#released.push({ batchId: req.batchId, line: req.line });
          this.#notifyIdle();
          this.pump();
          return;
        }
        // A hung call cut while the replica answered others since it was sent is that call's
        // fault, not an outage (hung calls cut in one sweep would otherwise read as a run).
        const hungAlone = result.kind === "failure" && result.code === "timeout" && breaker.lastSuccessAt > started;
        const cause = hungAlone ? null : outageCause(result);
        if (cause === null) {
          if (result.kind === "response") breaker.success();
          if (!ok) this.#failures.failed(backend.name, result);
          this.#finish(req, result);
        } else {
          // In a run of outage results (or never sent at all), the call is the engine's absence,
          // not the line's: it costs no attempt and waits in its pool's queue.
          const inARun = breaker.failuresInARow > 0;
          breaker.failure(cause);
          const unreached = result.kind === "failure" && result.unreached === true;
          const free = (req.freeRetries ?? 0) < FREE_OUTAGE_RETRIES && (inARun || !breaker.allows);
          const unspent = unreached || free;
          if (!unreached && free) req.freeRetries = (req.freeRetries ?? 0) + 1;
          this.#failures.failed(backend.name, result, unspent);
          if (!unspent) this.#finish(req, result);
          else if (this.#stopped) this.#released.push({ batchId: req.batchId, line: req.line });
          else this.#enqueue(pool, req, true);
        }
        this.#notifyIdle();
        this.pump();
      });
  }

  #finish(req: ClaimedRequest, result: BackendResult): void {
    this.#checkpointer.add(toOutcome(req, result, this.#o.retry));
  }

  #notifyIdle(): void {
    if (this.#inFlight.size > 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Stops claiming; lets in-flight calls finish until `deadlineMs`, then aborts the rest. Rows
   * never called and rows aborted are handed back to the claim source (pending, attempt not
   * counted).
   */
  async stop(deadlineMs: number): Promise<void> {
    this.#stopped = true;
    this.#failures.close();
    if (this.#hedgeTimer !== undefined) clearInterval(this.#hedgeTimer);
    await Promise.allSettled([...this.#resolving]);
    for (const queue of this.#queues.values()) {
      for (const r of queue.splice(0)) this.#released.push({ batchId: r.batchId, line: r.line });
    }
    this.#buffered = 0;
    if (this.#inFlight.size > 0) {
      const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadlineMs);
      });
      await Promise.race([idle, deadline]);
      clearTimeout(timer);
      for (const f of this.#inFlight.values()) f.abortedFor = "shutdown";
      for (const a of this.#aborts.values()) a.abort();
      this.#aborts.clear();
      // Aborted calls settle promptly and queue their release.
      while (this.#inFlight.size > 0) await new Promise((r) => setTimeout(r, 10));
    }
    const released = this.#released.splice(0);
    await this.#claims.release(released);
  }
}

export function toOutcome(req: ClaimedRequest, result: BackendResult, policy: RetryPolicy, now = Date.now()): Outcome {
  const verdict = decide(policy, result, req.attempt);
  if (verdict.kind === "retry")
    return { kind: "retry", batchId: req.batchId, line: req.line, nextAttemptMs: now + verdict.delayMs };
  if (result.kind === "response") {
    return {
      kind: verdict.kind === "success" ? "succeeded" : "failed",
      batchId: req.batchId,
      line: req.line,
      responseStatus: result.status,
      requestId: result.requestId ?? `req_${req.batchId.slice(6, 18)}_${req.line}`,
      result: result.bodyText,
      error: null,
      usage: result.usage,
      dupCount: req.dupCount,
    };
  }
  return {
    kind: "failed",
    batchId: req.batchId,
    line: req.line,
    responseStatus: null,
    requestId: null,
    result: null,
    error: JSON.stringify({ code: result.code, message: result.message }),
    usage: null,
    dupCount: req.dupCount,
  };
}
