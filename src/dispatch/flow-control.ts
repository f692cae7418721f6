/**
 * Adaptive concurrency per backend: find and hold the engine's saturation point without being
 * told its slot count, without flooding it.
 *
 * Signal: latency per generated token (latency / (1 + completion tokens)), a window's median.
 * Below saturation it stays near its floor; once more requests are in flight than the engine
 * has slots, the surplus waits in the engine's queue and the per-token latency rises in
 * proportion (ratio ≈ inFlight / slots). So with gradient g = floor / current:
 *
 *   slow start  — while g ≥ 1/(1+tolerance), double the limit every window (ramps fast);
 *   avoidance   — limit ← limit·g + √limit (smoothed): converges to slots + √slots, a small
 *                 standing queue that keeps every slot busy (≥ 0.98 utilisation) while latency
 *                 stays bounded;
 *   overload    — 429/503 or timeouts: multiplicative decrease (×0.7), at most once per window.
 *
 *   probe       — every `probeEvery` windows, one window runs at ¾ of the limit (below the
 *                 slots, so nothing queues) to re-measure the floor: a floor that only ever
 *                 tracked recent windows would drift up with the standing queue and run away.
 *                 A probe that finds a higher floor (longer prompts, a slower model) raises it
 *                 by at most 25% and probes again soon, so a changed workload is re-learned.
 *
 * Limits stay within [minLimit, maxLimit] (maxLimit: a configured or known cap).
 */

export interface FlowOptions {
  initialLimit: number;
  minLimit: number;
  maxLimit: number;
  /** Relative latency rise tolerated before slow start ends. */
  tolerance: number;
  /** Weight of a new estimate in avoidance (smoothing). */
  smoothing: number;
  /** Samples per window at least, and the most time a window may take. */
  minWindowSamples: number;
  maxWindowMs: number;
  /** Windows between floor probes. */
  probeEvery: number;
}

export const DEFAULT_FLOW_OPTIONS: FlowOptions = {
  initialLimit: 4,
  minLimit: 1,
  maxLimit: 1024,
  tolerance: 0.25,
  smoothing: 0.3,
  minWindowSamples: 8,
  maxWindowMs: 5_000,
  probeEvery: 30,
};

export type CallSignal = "ok" | "overload" | "error";

export interface FlowSnapshot {
  limit: number;
  inFlight: number;
  phase: "slow-start" | "avoidance";
  floorMsPerToken: number | null;
}

export class FlowController {
  readonly #o: FlowOptions;
  #limit: number;
  #inFlight = 0;
  #phase: "slow-start" | "avoidance" = "slow-start";
  #floor: number | null = null;
  #samples: number[] = [];
  #overloads = 0;
  #windowStart: number;
  #peakInFlight = 0;
  #windowsToProbe: number;
  #probing = false;
  readonly #now: () => number;
  onChange: ((s: FlowSnapshot, reason: string) => void) | undefined;

  constructor(options: Partial<FlowOptions> = {}, now: () => number = Date.now) {
    this.#o = { ...DEFAULT_FLOW_OPTIONS, ...options };
    this.#limit = clamp(this.#o.initialLimit, this.#o.minLimit, this.#o.maxLimit);
    this.#now = now;
    this.#windowStart = now();
    this.#windowsToProbe = this.#o.probeEvery;
  }

  get limit(): number {
    return Math.floor(this.#limit);
  }

  /** What may be in flight now: the limit, or ¾ of it during a probe window. */
  #effectiveLimit(): number {
    return this.#probing ? Math.max(this.#o.minLimit, Math.floor(this.#limit * 0.75)) : this.limit;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  available(): number {
    return Math.max(0, this.#effectiveLimit() - this.#inFlight);
  }

  snapshot(): FlowSnapshot {
    return { limit: this.limit, inFlight: this.#inFlight, phase: this.#phase, floorMsPerToken: this.#floor };
  }

  acquire(): void {
    this.#inFlight++;
    if (this.#inFlight > this.#peakInFlight) this.#peakInFlight = this.#inFlight;
  }

  /** Records one finished call. `outputTokens` is the completion length (0 when unknown). */
  release(signal: CallSignal, latencyMs: number, outputTokens: number): void {
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    if (signal === "overload") this.#overloads++;
    else if (signal === "ok") this.#samples.push(latencyMs / (1 + outputTokens));
    const elapsed = this.#now() - this.#windowStart;
    const enough = this.#samples.length + this.#overloads >= Math.max(this.#o.minWindowSamples, this.#effectiveLimit());
    if (enough || (elapsed >= this.#o.maxWindowMs && this.#samples.length + this.#overloads > 0)) this.#endWindow();
  }

  #endWindow(): void {
    const o = this.#o;
    const samples = this.#samples;
    const overloads = this.#overloads;
    this.#samples = [];
    this.#overloads = 0;
    this.#windowStart = this.#now();
    // Only a window that kept the limit (nearly) full says anything about whether it is too low.
    const busy = this.#peakInFlight >= Math.floor(this.#effectiveLimit() * 0.9);
    this.#peakInFlight = this.#inFlight;
    const probed = this.#probing;
    this.#probing = false;
    if (overloads > 0) {
      this.#phase = "avoidance";
      this.#set(this.#limit * 0.7, "overload");
      return;
    }
    if (samples.length === 0) return;
    const current = median(samples);
    if (this.#floor === null || current < this.#floor) this.#floor = current;
    else if (probed) {
      // Nothing queued during a probe: a higher reading means the work itself got slower.
      const raised = current > this.#floor * 1.05;
      this.#floor = Math.min(current, this.#floor * 1.25);
      this.#windowsToProbe = raised ? 3 : o.probeEvery;
      return;
    }
    const gradient = Math.min(1, this.#floor / current);
    if (this.#phase === "slow-start") {
      if (gradient >= 1 / (1 + o.tolerance)) {
        if (busy) this.#set(this.#limit * 2, "slow-start");
        return;
      }
      this.#phase = "avoidance";
    }
    const target = this.#limit * gradient + Math.sqrt(this.#limit);
    if (busy || target < this.#limit) this.#set(this.#limit * (1 - o.smoothing) + target * o.smoothing, "gradient");
    if (--this.#windowsToProbe <= 0) this.#probing = true;
  }

  #set(limit: number, reason: string): void {
    const before = this.limit;
    this.#limit = clamp(limit, this.#o.minLimit, this.#o.maxLimit);
    if (this.limit !== before) this.onChange?.(this.snapshot(), reason);
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
