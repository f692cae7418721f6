/**
 * The simulated inference engine: `slots` sequences run at once (continuous batching), the rest
 * wait in a FIFO queue. A job holds its slot from admission until its prefill (uncached prompt
 * tokens × prefillMsPerToken) and decode (completion tokens × stepMs) are done. Every sequence
 * advances one token per step independently of the others and a prefill does not stall other
 * sequences. By default the step time does not depend on the batch size (memory-bound decode);
 * with `stepGrowth` > 0 a sequence's step time is set at admission from how full the batch is
 * (stepMs × (1 + stepGrowth × running / slots)), as real engines slow down per token as the
 * batch fills while their total throughput still grows.
 *
 * Job states: queued → running → done, or queued/running → cancelled (client went away).
 * Zero-duration jobs finish synchronously and never occupy a slot across ticks.
 */
import { PrefixCache } from "./prefix-cache.js";

export interface EngineJob {
  readonly promptTokens: number;
  /** Cacheable prompt-block keys; empty when the job bypasses the prefix cache. */
  readonly keys: readonly number[];
  readonly completionTokens: number;
  onDone(outcome: JobOutcome): void;
}

export interface JobOutcome {
  /** Engine epoch the job was submitted in; reset() starts a new one. */
  epoch: number;
  hitBlocks: number;
  missBlocks: number;
  cachedTokens: number;
  admittedAt: number;
  finishedAt: number;
}

export type SubmitResult = { accepted: true; cancel(): void } | { accepted: false; retryAfterMs: number };

export interface EngineConfig {
  slots: number;
  stepMs: number;
  stepGrowth: number;
  prefillMsPerToken: number;
  blockSize: number;
  cacheBlocks: number;
  maxQueue: number | undefined;
  now: () => number;
}

interface Entry {
  job: EngineJob;
  epoch: number;
  state: "queued" | "running" | "done" | "cancelled";
  admittedAt: number;
  endAt: number;
  cancelledAt: number;
  hitBlocks: number;
  timer: NodeJS.Timeout | undefined;
}

export class Engine {
  readonly #cfg: EngineConfig;
  readonly #cache: PrefixCache;
  readonly #running = new Set<Entry>();
  #queue: Entry[] = [];
  #head = 0;
  #queued = 0;
  #maxQueueDepth = 0;
  #epoch = 0;
  #draining = false;
  #stopped = false;

  constructor(cfg: EngineConfig) {
    this.#cfg = cfg;
    this.#cache = new PrefixCache(cfg.cacheBlocks);
  }

  get running(): number {
    return this.#running.size;
  }

  get queued(): number {
    return this.#queued;
  }

  get maxQueueDepth(): number {
    return this.#maxQueueDepth;
  }

  get epoch(): number {
    return this.#epoch;
  }

  submit(job: EngineJob): SubmitResult {
    const now = this.#cfg.now();
    const entry: Entry = {
      job,
      epoch: this.#epoch,
      state: "queued",
      admittedAt: 0,
      endAt: 0,
      cancelledAt: Number.POSITIVE_INFINITY,
      hitBlocks: 0,
      timer: undefined,
    };
    const slotFree = this.#running.size < this.#cfg.slots && this.#queued === 0;
    if (!slotFree) {
      if (this.#cfg.maxQueue !== undefined && this.#queued >= this.#cfg.maxQueue) {
        return { accepted: false, retryAfterMs: this.#retryAfterMs(now) };
      }
      this.#queue.push(entry);
      this.#queued++;
      if (this.#queued > this.#maxQueueDepth) this.#maxQueueDepth = this.#queued;
    }
    if (slotFree && !this.#stopped) this.#start(entry, now);
    return { accepted: true, cancel: () => this.#cancel(entry) };
  }

  /** Starts a new epoch: empties the prefix cache; jobs already submitted keep the old epoch. */
  reset(): void {
    this.#epoch++;
    this.#cache.clear();
    this.#maxQueueDepth = this.#queued;
  }

  /** Stops every timer; unfinished jobs are left for their owners to fail. Idempotent. */
  stop(): void {
    this.#stopped = true;
    for (const e of this.#running) clearTimeout(e.timer);
    this.#running.clear();
    this.#queue = [];
    this.#head = 0;
    this.#queued = 0;
  }

  #start(entry: Entry, now: number): void {
    const { job } = entry;
    const { blockSize, prefillMsPerToken, stepMs, stepGrowth, slots } = this.#cfg;
    const step = stepMs * (1 + (stepGrowth * this.#running.size) / slots);
    const useCache = this.#cache.enabled && job.keys.length > 0;
    entry.hitBlocks = useCache ? this.#cache.lookup(job.keys, now).hitBlocks : 0;
    const prefillMs = (job.promptTokens - entry.hitBlocks * blockSize) * prefillMsPerToken;
    entry.state = "running";
    entry.admittedAt = now;
    entry.endAt = now + prefillMs + job.completionTokens * step;
    if (useCache && entry.epoch === this.#epoch) {
      const readyAt = now + prefillMs;
      this.#cache.commitAt(readyAt, job.keys, now, () => entry.cancelledAt >= readyAt);
    }
    if (entry.endAt <= now) {
      this.#finish(entry, now);
      return;
    }
    this.#running.add(entry);
    this.#arm(entry, now);
  }

  // setTimeout truncates fractional delays and may fire up to ~1 ms early, so re-check the clock:
  // a slot is never released before its nominal service time (this keeps the lower bound true).
  #arm(entry: Entry, now: number): void {
    entry.timer = setTimeout(
      () => {
        const t = this.#cfg.now();
        if (t < entry.endAt) {
          this.#arm(entry, t);
          return;
        }
        this.#running.delete(entry);
        this.#finish(entry, t);
        this.#drain(t);
      },
      Math.max(1, Math.ceil(entry.endAt - now)),
    );
  }

  #finish(entry: Entry, now: number): void {
    entry.state = "done";
    entry.timer = undefined;
    const hit = entry.hitBlocks;
    entry.job.onDone({
      epoch: entry.epoch,
      hitBlocks: hit,
      missBlocks: entry.job.keys.length - hit,
      cachedTokens: hit * this.#cfg.blockSize,
      admittedAt: entry.admittedAt,
      finishedAt: now,
    });
  }

  #cancel(entry: Entry): void {
    if (entry.state === "queued") {
      entry.state = "cancelled";
      this.#queued--;
    } else if (entry.state === "running") {
      entry.state = "cancelled";
      clearTimeout(entry.timer);
      const now = this.#cfg.now();
      entry.cancelledAt = now;
      this.#running.delete(entry);
      this.#drain(now);
    }
  }

  #drain(now: number): void {
    // Zero-duration jobs finish inside #start; the flag keeps that from recursing into #drain.
    if (this.#draining || this.#stopped) return;
    this.#draining = true;
    try {
      while (this.#running.size < this.#cfg.slots && this.#queued > 0) {
        const next = this.#queue[this.#head++];
        if (next === undefined) break;
        if (next.state !== "queued") continue;
        this.#queued--;
        this.#start(next, now);
      }
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
    } finally {
      this.#draining = false;
    }
  }

  #retryAfterMs(now: number): number {
    let earliest = Number.POSITIVE_INFINITY;
    for (const e of this.#running) if (e.endAt < earliest) earliest = e.endAt;
    return Number.isFinite(earliest) ? Math.max(1, Math.ceil(earliest - now)) : 1;
  }
}
