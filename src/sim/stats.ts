/**
 * Counters for `GET /stats`, covering one measurement window: from the first arrival after a reset
 * to the last completion. Only requests that were served (answered 200) in the window count
 * towards the work and the lower bound; faults and 429s are counted separately.
 */
import type { FaultKind } from "./faults.js";
import { LowerBound, type LowerBoundCosts, type LowerBoundSnapshot } from "./lower-bound.js";
import type { InferenceKind } from "./requests.js";

export interface SimStats {
  slots: number;
  requestsServed: number;
  servedByEndpoint: Record<InferenceKind, number>;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** Prompt blocks looked up in the prefix cache by served requests that were / were not resident. */
  cacheHits: number;
  cacheMisses: number;
  maxQueueDepth: number;
  /** 429s answered because the waiting queue was full (injected 429s are under `faults`). */
  queueFull429: number;
  faults: Record<FaultKind, number>;
  /** Live gauges, not reset. */
  running: number;
  queued: number;
  hanging: number;
  /** First arrival → last completion, in ms; 0 before anything was served. */
  makespanMs: number;
  /** Σ over served requests of (completion − admission): slot time actually held. */
  busySlotMs: number;
  /** busySlotMs / (slots × makespanMs). */
  utilization: number;
  lowerBoundMs: number;
  lowerBound: LowerBoundSnapshot;
  /** lowerBoundMs / makespanMs; 1 when nothing was served. */
  efficiency: number;
}

export interface ServedRecord {
  kind: InferenceKind;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  hitBlocks: number;
  missBlocks: number;
  keys: readonly number[];
  admittedAt: number;
  finishedAt: number;
}

export interface LiveGauges {
  running: number;
  queued: number;
  hanging: number;
  maxQueueDepth: number;
}

const zeroFaults = (): Record<FaultKind, number> => ({ error500: 0, error429: 0, reset: 0, hang: 0 });
const zeroKinds = (): Record<InferenceKind, number> => ({ chat: 0, completions: 0, embeddings: 0 });

export class StatsRecorder {
  readonly #slots: number;
  readonly #lowerBound: LowerBound;
  #firstArrival = Number.POSITIVE_INFINITY;
  #lastCompletion = Number.NEGATIVE_INFINITY;
  #served = zeroKinds();
  #promptTokens = 0;
  #cachedTokens = 0;
  #completionTokens = 0;
  #hits = 0;
  #misses = 0;
  #busyMs = 0;
  #queueFull = 0;
  #faults = zeroFaults();

  constructor(costs: LowerBoundCosts) {
    this.#slots = costs.slots;
    this.#lowerBound = new LowerBound(costs);
  }

  arrival(now: number): void {
    if (now < this.#firstArrival) this.#firstArrival = now;
  }

  served(r: ServedRecord): void {
    this.#served[r.kind]++;
    this.#promptTokens += r.promptTokens;
    this.#cachedTokens += r.cachedTokens;
    this.#completionTokens += r.completionTokens;
    this.#hits += r.hitBlocks;
    this.#misses += r.missBlocks;
    this.#busyMs += r.finishedAt - r.admittedAt;
    if (r.finishedAt > this.#lastCompletion) this.#lastCompletion = r.finishedAt;
    this.#lowerBound.add(r);
  }

  queueFull(): void {
    this.#queueFull++;
  }

  fault(kind: FaultKind): void {
    this.#faults[kind]++;
  }

  snapshot(live: LiveGauges): SimStats {
    const served = this.#served.chat + this.#served.completions + this.#served.embeddings;
    const makespanMs = served > 0 ? Math.max(0, this.#lastCompletion - this.#firstArrival) : 0;
    const lowerBound = this.#lowerBound.snapshot();
    return {
      slots: this.#slots,
      requestsServed: served,
      servedByEndpoint: { ...this.#served },
      promptTokens: this.#promptTokens,
      cachedTokens: this.#cachedTokens,
      completionTokens: this.#completionTokens,
      cacheHits: this.#hits,
      cacheMisses: this.#misses,
      maxQueueDepth: live.maxQueueDepth,
      queueFull429: this.#queueFull,
      faults: { ...this.#faults },
      running: live.running,
      queued: live.queued,
      hanging: live.hanging,
      makespanMs,
      busySlotMs: this.#busyMs,
      utilization: makespanMs > 0 ? this.#busyMs / (this.#slots * makespanMs) : 0,
      lowerBoundMs: lowerBound.lowerBoundMs,
      lowerBound,
      efficiency: makespanMs > 0 ? lowerBound.lowerBoundMs / makespanMs : 1,
    };
  }

  reset(): void {
    this.#firstArrival = Number.POSITIVE_INFINITY;
    this.#lastCompletion = Number.NEGATIVE_INFINITY;
    this.#served = zeroKinds();
    this.#promptTokens = 0;
    this.#cachedTokens = 0;
    this.#completionTokens = 0;
    this.#hits = 0;
    this.#misses = 0;
    this.#busyMs = 0;
    this.#queueFull = 0;
    this.#faults = zeroFaults();
    this.#lowerBound.reset();
  }
}
