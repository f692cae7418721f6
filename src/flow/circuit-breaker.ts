/**
 * A replica's circuit breaker: an engine that is away (restarting, loading its model, preempted)
 * stops receiving calls and is probed until it answers, instead of failing every line sent to it.
 *
 * States:
 *   closed     calls flow. Outage-class results (no connection, resets, 502/503/504 without a
 *              retry hint, timeouts) in a row are counted; a success resets the count. At
 *              `threshold` in a row the breaker opens. Scattered faults among good answers never
 *              reach the threshold (at 3% resets, five in a row is a 1-in-40-million run).
 *   open       no calls. The replica is probed after a backoff (0.5 s doubling to `maxProbeMs`,
 *              jittered); a probe that answers moves it to half-open, one that does not waits
 *              longer.
 *   half-open  calls flow again from slow start (the flow controller restarts); the first success
 *              closes the breaker, an outage-class result reopens it (the backoff keeps growing).
 *
 * Workers sharing a store share what their breakers learn (dispatch/shared-health.ts): another
 * worker's outage opens this one (`forceOpen`), another's recovery probes this one at once
 * (`probeSoon`); each worker still confirms recovery with its own probe.
 */

export type BreakerState = "closed" | "open" | "half-open";

export interface BreakerOptions {
  /** Outage-class results in a row that open the breaker. */
  threshold: number;
  /** First wait before a probe, and the longest. */
  minProbeMs: number;
  maxProbeMs: number;
}

export const DEFAULT_BREAKER_OPTIONS: BreakerOptions = { threshold: 5, minProbeMs: 500, maxProbeMs: 15_000 };

export interface BreakerChange {
  state: BreakerState;
  /** Why: the last outage's cause (`ECONNREFUSED`, `HTTP 503`, …), or the probe's answer. */
  cause: string;
  /** Since when the replica has been unavailable (ms), when it is open or half-open. */
  downSinceMs: number | null;
  /** Whether another worker's report caused it (forceOpen), not this process's own calls. */
  shared: boolean;
}

export type Probe = () => Promise<{ ok: true } | { ok: false; cause: string }>;

export class CircuitBreaker {
  readonly #o: BreakerOptions;
  readonly #probe: Probe;
  readonly #now: () => number;
  readonly #random: () => number;
  #state: BreakerState = "closed";
  #inARow = 0;
  #probes = 0;
  #downSinceMs: number | null = null;
  #lastCause = "";
  #timer: NodeJS.Timeout | undefined;
  #closedForGood = false;
  #probing = false;
  #lastSuccessAt = Number.NEGATIVE_INFINITY;
  onChange: ((change: BreakerChange) => void) | undefined;

  constructor(probe: Probe, options: Partial<BreakerOptions> = {}, now = Date.now, random = Math.random) {
    this.#probe = probe;
    this.#o = { ...DEFAULT_BREAKER_OPTIONS, ...options };
    this.#now = now;
    this.#random = random;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** Whether calls may be sent now. */
  get allows(): boolean {
    return this.#state !== "open";
  }

  /** Outage-class results in a row so far (0 after a success). */
  get failuresInARow(): number {
    return this.#inARow;
  }

  get downSinceMs(): number | null {
    return this.#downSinceMs;
  }

  get lastCause(): string {
    return this.#lastCause;
  }

  /** When the replica last answered (performance.now()), or -Infinity. */
  get lastSuccessAt(): number {
    return this.#lastSuccessAt;
  }

  /** A call reached the engine and it answered (any answer that is not an outage). */
  success(): void {
    this.#inARow = 0;
    this.#lastSuccessAt = performance.now();
    if (this.#state === "half-open") {
      this.#probes = 0;
      this.#downSinceMs = null;
      this.#set("closed", "answering");
    }
  }

  /** An outage-class result. */
  failure(cause: string): void {
    this.#inARow++;
    this.#lastCause = cause;
    if (this.#state === "half-open" || (this.#state === "closed" && this.#inARow >= this.#o.threshold)) {
      this.#downSinceMs ??= this.#now();
      this.#set("open", cause);
      this.#scheduleProbe();
    }
  }

  /** Another worker found the replica down: stop sending now, and probe it like any outage. */
  forceOpen(cause: string, downSinceMs: number): void {
    if (this.#state === "open") return;
    this.#lastCause = cause;
    this.#downSinceMs ??= downSinceMs;
    this.#set("open", cause, true);
    this.#scheduleProbe();
  }

  /** Another worker found the replica back: probe it now rather than at the next backoff. */
  probeSoon(): void {
    if (this.#state !== "open" || this.#closedForGood) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    void this.#runProbe();
  }

  /** Stops probing (the process is shutting down). */
  close(): void {
    this.#closedForGood = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #scheduleProbe(): void {
    if (this.#closedForGood || this.#timer !== undefined) return;
    const exp = Math.min(this.#o.maxProbeMs, this.#o.minProbeMs * 2 ** this.#probes);
    const delay = Math.round(exp / 2 + (this.#random() * exp) / 2);
    this.#probes++;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#runProbe();
    }, delay);
    this.#timer.unref();
  }

  async #runProbe(): Promise<void> {
    if (this.#closedForGood || this.#state !== "open" || this.#probing) return;
    let answer: Awaited<ReturnType<Probe>>;
    this.#probing = true;
    try {
      answer = await this.#probe();
    } catch (err) {
      answer = { ok: false, cause: (err as Error).message };
    } finally {
      this.#probing = false;
    }
    if (this.#closedForGood || this.#state !== "open") return;
    if (answer.ok) {
      this.#inARow = 0;
      this.#set("half-open", "probe answered");
    } else {
      this.#lastCause = answer.cause;
      this.#scheduleProbe();
    }
  }

  #set(state: BreakerState, cause: string, shared = false): void {
    if (this.#state === state) return;
    this.#state = state;
    this.onChange?.({ state, cause, downSinceMs: this.#downSinceMs, shared });
  }
}
