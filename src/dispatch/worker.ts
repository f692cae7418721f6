/**
 * A worker: runs batch jobs and dispatches requests. States: idle → running → stopping → stopped.
 *
 * A housekeeping tick (every `tickMs`) recovers expired leases, picks up validating, cancelling,
 * expired, complete and orphaned finalizing batches, renews this worker's request leases, and
 * refreshes the dispatcher's list of in_progress batches. `stop()` is idempotent: it stops
 * claiming, lets in-flight calls finish until the deadline, hands the rest back, and flushes
 * the checkpointer, every step running even if an earlier one throws.
 */
import type { HealthChange, Router } from "../backends/router.js";
import type { AppContext } from "../context.js";
import { newWorkerId } from "../ids.js";
import { setBatchesWaiting } from "../store/batch-waiting.js";
import { batchesInStatus } from "../store/batches.js";
import type { ClaimSource } from "../store/claims/claim-source.js";
import type { BatchProgress } from "../store/requests/checkpoint.js";
import {
  cancelJob,
  completeJob,
  expireJob,
  failBatchAfterJobErrors,
  finalizeOwned,
  type JobContext,
  validateJob,
} from "./batch-jobs.js";
import { Checkpointer, type CheckpointerOptions } from "./checkpointer.js";
import { Dispatcher } from "./dispatcher.js";
import { ProgressLog } from "./progress-log.js";
import {
  backoffDelay,
  DEFAULT_JOB_RETRY,
  DEFAULT_RETRY_POLICY,
  type JobRetryPolicy,
  type RetryPolicy,
} from "./retry-policy.js";
import { RoundRobinPolicy, type SchedulableBatch, Scheduler } from "./scheduler.js";
import { SharedHealth } from "./shared-health.js";

export interface WorkerOptions {
  id?: string;
  leaseMs: number;
  tickMs: number;
  shutdownDeadlineMs: number;
  retry: RetryPolicy;
  /** Backoff and attempt cap of batch jobs that throw (src/dispatch/retry-policy.ts). */
  jobRetry: JobRetryPolicy;
  maxClaim: number;
  maxWindow: number;
  checkpoint: Partial<CheckpointerOptions>;
  /**
   * Whether finalize writes the batch's output and error files. `sluice run` turns it off: it
   * writes its `-o` file straight from the store, and nothing else reads that batch's files.
   */
  outputFiles: boolean;
}

export const DEFAULT_WORKER_OPTIONS: WorkerOptions = {
  leaseMs: 60_000,
  tickMs: 250,
  shutdownDeadlineMs: 10_000,
  retry: DEFAULT_RETRY_POLICY,
  jobRetry: DEFAULT_JOB_RETRY,
  maxClaim: 512,
  maxWindow: 4096,
  checkpoint: {},
  outputFiles: true,
};

type State = "idle" | "running" | "stopping" | "stopped";

/** One line per breaker change: the replica, what happened, and what Sluice does about it. */
function logHealthChange(logger: AppContext["logger"], change: HealthChange): void {
  const fields = {
    backend: change.backend,
    state: change.state,
    cause: change.cause,
    route: change.pool.patterns,
    shared: change.shared,
  };
  if (change.state === "open") {
    logger.warn(
      `backend ${change.backend} is unreachable (${change.cause}${change.shared ? ", reported by another worker" : ""}): no calls go to it; probing it with backoff` +
        (change.pool.healthy
          ? ""
          : `; no replica of route '${change.pool.patterns.join(", ")}' answers, its batches wait`),
      fields,
    );
  } else if (change.state === "half-open") {
    logger.info(`backend ${change.backend} answers again: resuming from slow start`, fields);
  } else {
    logger.info(`backend ${change.backend} is serving`, fields);
  }
}

/** batchesInStatus' default page: the tick sees at most this many unfinished batches. */
const BATCH_LIST_LIMIT = 1000;

export class Worker {
  readonly id: string;
  readonly #ctx: AppContext;
  readonly #jobs: JobContext;
  readonly #o: WorkerOptions;
  readonly #claims: ClaimSource;
  readonly #checkpointer: Checkpointer;
  readonly #dispatcher: Dispatcher;
  readonly #router: Router;
  #state: State = "idle";
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  /** Batch jobs running now, by batch id (one job per batch per worker). */
  readonly #jobsRunning = new Map<string, Promise<void>>();
  /** Batches whose last job threw: failures in a row, and when the next try may start (ms). */
  readonly #jobFailures = new Map<string, { attempts: number; notBefore: number }>();
  #recovered = false;
  readonly #jobsAbort = new AbortController();
  readonly #sharedHealth: SharedHealth | undefined;

  constructor(ctx: AppContext, router: Router, options: Partial<WorkerOptions> = {}) {
    this.#o = { ...DEFAULT_WORKER_OPTIONS, ...options };
    this.id = this.#o.id ?? newWorkerId();
    this.#ctx = ctx;
    this.#router = router;
    this.#jobs = {
      ...ctx,
      owner: this.id,
      batchLeaseMs: this.#o.leaseMs,
      signal: this.#jobsAbort.signal,
      outputFiles: this.#o.outputFiles,
      routeIdentity: (model) => router.identity(model),
    };
    this.#claims = ctx.store.caps.createClaimSource(ctx.store, {
      owner: this.id,
      leaseMs: this.#o.leaseMs,
      onError: (what, err) => ctx.logger.error(what, { error: err as Error }),
    });
    this.#checkpointer = new Checkpointer(ctx.store, this.#claims.fence, this.#o.checkpoint);
    const scheduler = new Scheduler(this.#claims, new RoundRobinPolicy());
    this.#dispatcher = new Dispatcher(
      { router, scheduler, claims: this.#claims, checkpointer: this.#checkpointer, logger: ctx.logger },
      { retry: this.#o.retry, maxClaim: this.#o.maxClaim, maxWindow: this.#o.maxWindow },
    );
    this.#checkpointer.onError = (err) => ctx.logger.error("checkpoint failed", { error: err as Error });
    const progressLog = new ProgressLog(ctx.logger);
    this.#checkpointer.onCommitted = (progress, _written, group) => {
      this.#dispatcher.committed(group);
      this.#afterCommit(progress);
      progressLog.observe(progress);
    };
    router.onFlowChange = (backend, limit, inFlight, reason) =>
      ctx.events.emit("backend.limit", { backend, limit, inFlight, reason });
    // Workers sharing a store (leased claims) share what their breakers learn.
    this.#sharedHealth = this.#claims.fence.owner === null ? undefined : new SharedHealth(ctx.store, router, this.id);
    router.onReplicaCreated = (replica) => this.#sharedHealth?.created(replica);
    router.onHealthChange = (change) => {
      logHealthChange(ctx.logger, change);
      ctx.events.emit("backend.health", {
        backend: change.backend,
        state: change.state,
        cause: change.cause,
        shared: change.shared,
      });
      if (change.state !== "open") this.#dispatcher.poke();
      this.#sharedHealth
        ?.record(change)
        .catch((err: unknown) => ctx.logger.error("recording backend health failed", { error: err as Error }));
    };
  }

  get state(): State {
    return this.#state;
  }

  start(): void {
    if (this.#state !== "idle") return;
    this.#state = "running";
    this.#schedule(0);
  }

  /** Wake the worker now (e.g. a batch was just created in this process). */
  nudge(): void {
    if (this.#state === "running") this.#schedule(0);
  }

  #schedule(delay: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#ticking !== undefined || this.#state !== "running") return;
      this.#ticking = this.#tick()
        .catch((err: unknown) => this.#ctx.logger.error("worker tick failed", { error: err as Error }))
        .finally(() => {
          this.#ticking = undefined;
          if (this.#state === "running") this.#schedule(this.#o.tickMs);
        });
    }, delay);
  }

  /** Progress events from the counters the checkpoint returned; a batch whose rows are all done completes. */
  #afterCommit(progress: BatchProgress[]): void {
    for (const b of progress) {
      this.#ctx.events.emit("batch.progress", {
        batchId: b.batchId,
        tenantId: b.tenantId,
        completed: b.completed,
        failed: b.failed,
      });
      if (b.status === "in_progress" && b.completed + b.failed >= b.total)
        this.#runJob(b.batchId, () => completeJob(this.#jobs, b.batchId));
    }
  }

  /**
   * Runs a batch job unless one runs for that batch already, or its last one threw and its backoff
   * has not passed. When it ends the worker ticks again at once (the batch moved on), unless the
   * job said it had nothing to do (`false`): waking on those turned the 250 ms tick into a busy
   * loop of housekeeping queries. A job that throws does not wake it either: restarting at once
   * made a batch whose job always threw (a RangeError, S3 unreachable) spin a core for as long
   * as it existed.
   */
  #runJob(batchId: string, job: () => Promise<unknown>): void {
    if (this.#jobsRunning.has(batchId) || this.#state !== "running") return;
    const failed = this.#jobFailures.get(batchId);
    if (failed !== undefined && Date.now() < failed.notBefore) return;
    const p = job()
      .then(
        (acted) => {
          this.#jobFailures.delete(batchId);
          return acted !== false;
        },
        (err: unknown) => this.#jobFailed(batchId, err),
      )
      .then((acted) => {
        this.#jobsRunning.delete(batchId);
        if (acted) this.nudge();
      });
    this.#jobsRunning.set(batchId, p);
  }

  /** Schedules the retry of a failed job, or fails the batch once its attempts are used up. */
  async #jobFailed(batchId: string, err: unknown): Promise<boolean> {
    const policy = this.#o.jobRetry;
    const attempts = (this.#jobFailures.get(batchId)?.attempts ?? 0) + 1;
    const now = Date.now();
    if (attempts < policy.maxAttempts) {
      const retryInMs = backoffDelay(attempts, policy.baseDelayMs, policy.maxDelayMs);
      this.#jobFailures.set(batchId, { attempts, notBefore: now + retryInMs });
      this.#ctx.logger.error("batch job failed", { batchId, attempt: attempts, retryInMs, error: err as Error });
      return false;
    }
    this.#ctx.logger.error("batch job failed; failing the batch", { batchId, attempt: attempts, error: err as Error });
    try {
      await failBatchAfterJobErrors(this.#jobs, batchId, attempts);
      this.#jobFailures.delete(batchId);
      return true;
    } catch (failErr) {
      // Could not even fail it (the store is down): try again after the longest backoff.
      this.#jobFailures.set(batchId, { attempts: attempts - 1, notBefore: now + policy.maxDelayMs });
      this.#ctx.logger.error("failing a batch failed", { batchId, error: failErr as Error });
      return false;
    }
  }

  async #tick(): Promise<void> {
    const now = Date.now();
    const { store } = this.#ctx;
    if (!this.#recovered) {
      // What a crashed process held: taken back (its attempt counted) before claiming anything.
      await this.#claims.recover(now);
      this.#recovered = true;
    }
    if ((await this.#claims.upkeep(now)) > 0) this.#dispatcher.poke();
    await this.#sharedHealth?.sync(now);
    const batches = await batchesInStatus(store, ["validating", "in_progress", "cancelling", "finalizing"]);
    if (this.#jobFailures.size > 0 && batches.length < BATCH_LIST_LIMIT) {
      // Forget batches that ended or were deleted meanwhile (another worker may have finished them);
      // only from a complete list, or a failing batch past the first page would start over.
      const live = new Set(batches.map((b) => b.id));
      for (const id of this.#jobFailures.keys()) if (!live.has(id)) this.#jobFailures.delete(id);
    }
    const nowS = Math.floor(now / 1000);
    const active: SchedulableBatch[] = [];
    const local = this.#dispatcher.batchesInFlight();
    for (const b of batches) {
      const ownerFree = b.owner === null || (b.owner_expires_ms !== null && Number(b.owner_expires_ms) < now);
      if (b.status === "validating" && ownerFree) this.#runJob(b.id, () => validateJob(this.#jobs, b.id));
      else if (b.status === "cancelling") {
        if (local.has(b.id)) this.#dispatcher.abortBatch(b.id);
        if (ownerFree) this.#runJob(b.id, () => cancelJob(this.#jobs, b.id));
      } else if (b.status === "finalizing") {
        if (local.has(b.id)) this.#dispatcher.abortBatch(b.id);
        if (ownerFree) this.#runJob(b.id, () => finalizeOwned(this.#jobs, b.id));
      } else if (b.status === "in_progress") {
        if (Number(b.expires_at) <= nowS) {
          this.#dispatcher.abortBatch(b.id);
          this.#runJob(b.id, () => expireJob(this.#jobs, b.id));
        } else {
          active.push({
            id: b.id,
            tenantId: b.tenant_id,
            endpoint: b.endpoint,
            deadlineMs: Number(b.expires_at) * 1000,
            priority: 0,
            createdAtMs: Number(b.created_at) * 1000,
            model: b.model,
            routeCost: null,
          });
          this.#runJob(b.id, () => completeJob(this.#jobs, b.id));
        }
      }
    }
    this.#dispatcher.setActiveBatches(active);
    await this.#recordWaiting();
  }

  /** Batches waiting for an engine, as the worker last wrote them: batch id → since (unix s). */
  readonly #waiting = new Map<string, number>();

  /** Writes which batches wait for an engine (and which stopped waiting), with a log line each. */
  async #recordWaiting(): Promise<void> {
    const now = this.#dispatcher.waitingBatches();
    const changes: { batchId: string; since: number | null }[] = [];
    for (const [batchId, sinceMs] of now) {
      if (this.#waiting.has(batchId)) continue;
      const since = Math.floor(sinceMs / 1000);
      changes.push({ batchId, since });
      this.#ctx.logger.warn(`batch ${batchId} waits for an engine: none of its route's replicas answers`, {
        batchId,
        since: new Date(sinceMs).toISOString(),
      });
    }
    for (const batchId of this.#waiting.keys()) {
      if (now.has(batchId)) continue;
      changes.push({ batchId, since: null });
      this.#ctx.logger.info(`batch ${batchId} runs again: its engine answers`, { batchId });
    }
    if (changes.length === 0) return;
    await setBatchesWaiting(this.#ctx.store, changes);
    for (const c of changes) {
      if (c.since === null) this.#waiting.delete(c.batchId);
      else this.#waiting.set(c.batchId, c.since);
    }
  }

  /** Graceful, then forceful after the deadline; every cleanup step runs. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === "stopped" || this.#state === "stopping") {
      while (this.#state !== "stopped") await new Promise((r) => setTimeout(r, 20));
      return;
    }
    this.#state = "stopping";
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    const steps: (() => Promise<unknown>)[] = [
      async () => this.#ticking,
      () => this.#dispatcher.stop(this.#o.shutdownDeadlineMs),
      async () => this.#jobsAbort.abort(),
      () => this.#checkpointer.flush(),
      () => this.#claims.drain(),
      () => Promise.allSettled([...this.#jobsRunning.values()]),
      () => this.#router.close(),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        this.#ctx.logger.error("worker stop step failed", { error: err as Error });
      }
    }
    this.#state = "stopped";
  }
}
