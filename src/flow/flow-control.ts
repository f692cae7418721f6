/**
 * Adaptive concurrency per backend: find and hold the engine's saturation point without being
 * told its slot count, without flooding it.
 *
 * Signal: the gradient g, about (slots serving) / (requests in flight), read two ways; the larger
 * reading wins, unless both read a queue (below 1/(1+tolerance)): then their mean:
 *   per token — latency per generated token (latency / (1 + completion tokens)), a window's 30th
 *               percentile (see LATENCY_QUANTILE), against its floor: g = floor / current. Once
 *               more requests are in flight than the engine has slots, the surplus waits in its
 *               queue and this rises in proportion (ratio ≈ inFlight / slots). But it also rises
 *               when the engine's step time grows as its batch fills (real engines do), and read
 *               as a queue that held the limit at ~⅔ of 32 slots and ~½ of 128.
 *   wait      — a fit of latency = wait + perToken × tokens over the window (fitLatency). A queue
 *               delays a request before its first token, whatever its length: it raises `wait`.
 *               A slower step raises `perToken`. g = typical latency with the base wait / with
 *               this window's wait. Needs answers of varied lengths; without, per token alone.
 * So limit·g is about how many requests the engine serves at once:
 *
 *   slow start  — while g ≥ 1/(1+tolerance), the limit grows by one per answer (doubling every
 *                 round trip, at most ×2 a window): fast, yet one call at a time, so an engine
 *                 that refuses is not hit by a burst. Past a latency rise it still goes on while
 *                 throughput (in-flight level / latency, Little's law) grows by at least
 *                 THROUGHPUT_ELASTICITY of the level's growth: an engine whose step time grows
 *                 as its batch fills (real ones do) raises latency long before it queues;
 *   avoidance   — limit ← limit·g + √limit (smoothed; at once, to no less than half, when slow
 *                 start ends, which overshoots by up to a round trip): converges to slots +
 *                 √slots, a small standing queue that keeps every slot busy while latency
 *                 stays bounded. Three busy windows in a row with no queue at all (g ≥ UNQUEUED)
 *                 grow it ×1.25 a window: slow start ended early, or the engine got faster;
 *   overload    — 429/503 or timeouts, acted on at once (refusals of calls sent before the
 *                 last reaction are not acted on again): the engine holds
 *                 (slots + its queue) ≈ the in-flight count it refused, so that count minus one
 *                 becomes a ceiling the limit stays under, and the limit drops ×0.7 but not
 *                 below the slots the last window saw served. The ceiling rises 5% after
 *                 `ceilingProbeEvery` busy windows against it, so capacity is re-probed rarely.
 *
 *   probe       — every `probeEvery` windows, one window runs at ¾ of the limit (below the
 *                 slots, so nothing queues) to re-measure the floor: a floor that only ever
 *                 tracked recent windows would drift up with the standing queue and run away.
 *                 A probe that finds a higher floor (longer prompts, a slower model) raises it
 *                 by at most 25% and probes again soon, so a changed workload is re-learned.
 *                 Probes re-measure the base wait too (see #learnBaseWait).
 *
 * Windows sample only calls started after they began (completions arrive roughly in start
 * order, so the first `inFlight` completions of a window are skipped): an answer to a call sent
 * under the previous limit says nothing about the new one, and counting it made slow start
 * overshoot by a round trip. Limits stay within [minLimit, maxLimit] (maxLimit: a configured or
 * known cap).
 */

import type { ClientLoadMeter } from "./client-load.js";

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
  /** Busy windows spent at the overload ceiling before it rises by 5%. */
  ceilingProbeEvery: number;
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
  ceilingProbeEvery: 4,
};

/**
 * The window statistic: a low quantile, not the median. Requests that hit the engine's prefix
 * cache and requests that miss it differ several-fold in latency per token; at a hit rate near
 * one half the median jumps between the two modes from window to window, reads as queueing, and
 * the limit collapsed (to 4 of 16 slots, measured). Queueing delays every request, so a low
 * quantile rises with it just the same, and it stays in one mode unless few requests hit.
 */
const LATENCY_QUANTILE = 0.3;

/**
 * Slow start continues past a latency rise while throughput grows by at least this share of the
 * in-flight level's growth (1 below saturation on a flat-step engine, ~0.5 at the slots of an
 * engine whose step time doubles at a full batch, 0 once requests queue).
 */
const THROUGHPUT_ELASTICITY = 0.3;

/** A gradient this close to 1 reads no queue at all (the held limit + √limit queues √limit: 6% at 256). */
const UNQUEUED = 0.97;

/**
 * Client-bound windows (see #clientBound and client-load.ts): the event loop at least this busy,
 * and its mean wait at least this share of the window's latency (30th percentile); the second
 * pair of each, to stay client-bound. The loop's own busyness is what tells "this process is the
 * bottleneck" from "this machine is short of CPU": a process that is not scheduled also sees its
 * callbacks late, but its loop is idle, waiting on the engine. (With a lower bar of 0.5, worker
 * processes sharing 2 cores with PostgreSQL and a 40 ms engine read client-bound, raised their
 * limits to their caps and queued at the engine: test/scale/multi-process.test.ts.) Zero-cost
 * engine, bench/pipeline-overhead.ts's workload: 0.82 busy at 10 in flight, 0.91 at 64.
 */
const CLIENT_BOUND_UTILIZATION = { enter: 0.75, stay: 0.6 };
const CLIENT_BOUND_SHARE = { enter: 0.5, stay: 0.1 };
/**
 * The limit client-bound windows raise it to: enough calls out to cover this process's own pauses
 * (a claim or a checkpoint holds the loop ~1–5 ms) at the rates one process reaches (10–20k/s).
 * Against an engine that answers at once, 64 in flight took ~13% less time per request than the
 * ~10 the latency reading held (bench/pipeline-overhead.ts workload, 2026-11-29).
 */
const CLIENT_BOUND_LIMIT = 64;

/** Fewest answers a fit takes; answers pooled from small windows before they are fitted together. */
const MIN_FIT = 12;
const POOLED_FIT = 32;

export type CallSignal = "ok" | "overload" | "error";

/**
 * Refusals are acted on in bursts only: at least OVERLOAD_BURST of the last OVERLOAD_SPAN answers.
 * An engine past its queue refuses most of what it gets beyond it; refusals scattered among good
 * answers (a provider's occasional 429, the faults bench's 5%) are not load, and reacting to each
 * ratcheted the ceiling down by one per refusal, faster than ceiling probes raise it: the limit
 * fell to 1–2 of 32 slots (test/execution/outage.test.ts). With 4 of 20, 5% scattered refusals
 * still made a burst every ~300 answers, each cutting the limit ×0.7 below the engine's slots
 * (bench/faults.ts 0.80 of capacity); with 6 of 20 it is one in ~50,000 (0.84). Hovering just past
 * an engine's queue costs a few percent of refused calls, retried after their hint: the engine
 * stays full.
 */
const OVERLOAD_SPAN = 20;
const OVERLOAD_BURST = 6;

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
  /** This window's fresh answers: latency per token, latency, completion tokens. */
  #samples: number[] = [];
  #latencies: number[] = [];
  #tokens: number[] = [];
  /** A fit's wait with nothing queued (see fitLatency, #learnBaseWait). */
  #baseWait: number | null = null;
  /** Answers of windows too small to fit alone (slow start's first), pooled until there are enough. */
  #pool: { latencies: number[]; tokens: number[] } = { latencies: [], tokens: [] };
  /** Busy avoidance windows in a row whose gradient read no queue (≥ UNQUEUED). */
  #unqueuedStreak = 0;
  /** The last window's answers when it had too few to fit alone. */
  #smallWindow: { latencies: number[]; tokens: number[] } | undefined;
  /** The base waits the last probe windows read (see #learnBaseWait). */
  #probeWaits: number[] = [];
  #windowStart: number;
  /** The effective limit when the window began: its sample target and slow start's cap. */
  #windowLimit: number;
  #peakInFlight = 0;
  /** Completions still due from calls started before this window: not samples of it. */
  #stale = 0;
  /** Calls sent since the last reaction to an overload. */
  #sentSinceOverload = 0;
  #windowsToProbe: number;
  #probing = false;
  /** Just below the in-flight count an engine refused; the limit stays under it. */
  #ceiling = Number.POSITIVE_INFINITY;
  #windowsAtCeiling = 0;
  /** The last window with samples: its in-flight level and latency, to see whether throughput grew. */
  #lastWindow: { level: number; latency: number } | undefined;
  /** limit·g of the last window with samples: about how many the engine serves at once. */
  #serving = 0;
  readonly #now: () => number;
  onChange: ((s: FlowSnapshot, reason: string) => void) | undefined;

  readonly #clientLoad: ClientLoadMeter | undefined;
  #wasClientBound = false;
  /** The last OVERLOAD_SPAN answers (1: a refusal), and how many of them were refusals. */
  readonly #recent = new Uint8Array(OVERLOAD_SPAN);
  #recentAt = 0;
  #recentRefusals = 0;

  /** `clientLoad`: this process's own load (client-load.ts); absent = never client-bound (models, tests). */
  constructor(options: Partial<FlowOptions> = {}, now: () => number = Date.now, clientLoad?: ClientLoadMeter) {
    this.#o = { ...DEFAULT_FLOW_OPTIONS, ...options };
    this.#clientLoad = clientLoad;
    this.#limit = clamp(this.#o.initialLimit, this.#o.minLimit, this.#o.maxLimit);
    this.#now = now;
    this.#windowStart = now();
    this.#windowLimit = this.limit;
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

  /**
   * Starts over from slow start at the initial limit (an engine back from an outage may be a new
   * process, with other slots or a cold cache): what was learned of the old one is dropped, except
   * the calls still in flight, whose answers are not samples of the new start.
   */
  restart(reason: string): void {
    this.#phase = "slow-start";
    this.#floor = null;
    this.#baseWait = null;
    this.#pool = { latencies: [], tokens: [] };
    this.#smallWindow = undefined;
    this.#probeWaits = [];
    this.#unqueuedStreak = 0;
    this.#ceiling = Number.POSITIVE_INFINITY;
    this.#windowsAtCeiling = 0;
    this.#lastWindow = undefined;
    this.#serving = 0;
    this.#probing = false;
    this.#windowsToProbe = this.#o.probeEvery;
    this.#set(this.#o.initialLimit, reason);
    this.#startWindow();
  }

  acquire(): void {
    this.#inFlight++;
    this.#sentSinceOverload++;
    if (this.#inFlight > this.#peakInFlight) this.#peakInFlight = this.#inFlight;
  }

  /** Records one finished call. `outputTokens` is the completion length (0 when unknown). */
  release(signal: CallSignal, latencyMs: number, outputTokens: number): void {
    const inFlight = this.#inFlight;
    this.#inFlight = Math.max(0, this.#inFlight - 1);
    const fresh = this.#stale === 0;
    if (!fresh) this.#stale--;
    if (signal !== "error") {
      const refused = signal === "overload" ? 1 : 0;
      this.#recentRefusals += refused - (this.#recent[this.#recentAt] as number);
      this.#recent[this.#recentAt] = refused;
      this.#recentAt = (this.#recentAt + 1) % OVERLOAD_SPAN;
    }
    if (signal === "overload") {
      // Refusals come back at once, out of order. Those of calls sent before the last reaction
      // were answered by it; with nothing sent since, this is one of them.
      if (this.#sentSinceOverload > 0 && this.#recentRefusals >= OVERLOAD_BURST) {
        this.#recent.fill(0);
        this.#recentRefusals = 0;
        this.#overload(inFlight);
      }
      return;
    }
    if (signal !== "ok") return;
    const busy = this.#peakInFlight >= Math.floor(this.#windowLimit * 0.9);
    if (this.#phase === "slow-start" && busy && this.#limit < this.#windowLimit * 2) {
      this.#set(this.#limit + 1, "slow-start");
    }
    if (!fresh) return;
    this.#samples.push(latencyMs / (1 + outputTokens));
    this.#latencies.push(latencyMs);
    this.#tokens.push(outputTokens);
    const n = this.#samples.length;
    const elapsed = this.#now() - this.#windowStart;
    const wanted = this.#phase === "slow-start" ? Math.ceil(this.#windowLimit / 2) : this.#windowLimit;
    let enough = n >= Math.max(this.#o.minWindowSamples, wanted);
    // A slow-start window whose per-token latency rose waits for enough answers to fit (is it a
    // queue, or the engine slowing as its batch fills?) rather than end slow start on it.
    if (enough && this.#phase === "slow-start" && n < MIN_FIT && this.#perTokenRose(LATENCY_QUANTILE)) enough = false;
    if (enough || elapsed >= this.#o.maxWindowMs) this.#endWindow();
    // Slow start looks early and often: the first answers that queued end it, before it doubles past.
    else if (this.#phase === "slow-start" && n >= this.#o.minWindowSamples && n % 4 === 0 && this.#queueing()) {
      this.#endWindow();
    }
  }

  /**
   * Whether this process's own wait made up at least half of the window's latency, its loop busy
   * (client-load.ts); once so, while the wait stays above a tenth. Hysteresis: at 64 in flight
   * the share hovers around the half, and with a quarter to stay the windows read below it cut
   * the limit to ~40 a quarter of the time. A slow engine's latency dwarfs any wait of this
   * process (share ~0).
   */
  #clientBound(latencies: number[]): boolean {
    const load = this.#clientLoad?.read();
    if (load === undefined) return false;
    const bar = this.#wasClientBound ? "stay" : "enter";
    this.#wasClientBound =
      load.utilization >= CLIENT_BOUND_UTILIZATION[bar] &&
      load.delayMs >= CLIENT_BOUND_SHARE[bar] * quantile(latencies, LATENCY_QUANTILE);
    return this.#wasClientBound;
  }

  /** Whether this window's samples so far show latency risen past the tolerance (median: reacts sooner). */
  #queueing(): boolean {
    // The per-token reading also rises when the engine slows as its batch fills: let a fit
    // confirm a queue, once there are enough answers for one.
    if (!this.#perTokenRose(0.5) || this.#latencies.length < MIN_FIT) return false;
    const fit = fitLatency(this.#latencies, this.#tokens);
    return fit === undefined || this.#baseWait === null || waitGradient(fit, this.#baseWait) < this.#queued;
  }

  /** Whether this window's latency per token (quantile q) rose past the tolerance over the floor. */
  #perTokenRose(q: number): boolean {
    return this.#floor !== null && this.#floor / quantile(this.#samples, q) < this.#queued;
  }

  /** A gradient below this reads a queue: latency rose past the tolerance. */
  get #queued(): number {
    return 1 / (1 + this.#o.tolerance);
  }

  #overload(refusedAt: number): void {
    this.#phase = "avoidance";
    this.#ceiling = Math.max(this.#o.minLimit, Math.min(this.#ceiling, refusedAt) - 1);
    this.#windowsAtCeiling = 0;
    this.#sentSinceOverload = 0;
    this.#set(Math.max(this.#limit * 0.7, Math.min(this.#serving, this.#ceiling)), "overload");
    this.#startWindow();
  }

  #startWindow(): void {
    this.#samples = [];
    this.#latencies = [];
    this.#tokens = [];
    this.#windowStart = this.#now();
    this.#peakInFlight = this.#inFlight;
    this.#stale = this.#inFlight;
    this.#windowLimit = this.#effectiveLimit();
  }

  #endWindow(): void {
    const o = this.#o;
    const samples = this.#samples;
    const latencies = this.#latencies;
    const tokens = this.#tokens;
    const fit = fitLatency(latencies, tokens);
    // Only a window that kept the limit (nearly) full says anything about whether it is too low.
    const busy = this.#peakInFlight >= Math.floor(this.#windowLimit * 0.9);
    const windowLimit = this.#windowLimit;
    const probed = this.#probing;
    this.#probing = false;
    this.#startWindow();
    this.#probeCeiling(busy);
    if (samples.length === 0) return;
    if (this.#clientBound(latencies)) {
      // Sluice, not the engine, was the bottleneck: the answers' latency was mostly their wait for
      // this process. It says nothing about the engine, which answers faster than it is asked
      // (so more in flight cannot queue there): the limit holds, or rises to CLIENT_BOUND_LIMIT,
      // enough out to keep this process fed through its own pauses (claims, checkpoints).
      this.#unqueuedStreak = 0;
      const cap = Math.min(o.maxLimit, this.#ceiling, CLIENT_BOUND_LIMIT);
      if (this.#limit < cap) this.#set(Math.min(cap, this.#limit * 1.25 + 1), "client-bound");
      else if (this.#phase === "slow-start") this.#phase = "avoidance";
      return;
    }
    const current = quantile(samples, LATENCY_QUANTILE);
    const perTokenRose = this.#floor !== null && this.#floor / current < this.#queued;
    this.#learnBaseWait(fit, latencies, tokens, probed, perTokenRose);
    if (this.#floor === null || current < this.#floor) this.#floor = current;
    else if (probed) {
      // Nothing queued during a probe: a higher reading means the work itself got slower.
      const raised = current > this.#floor * 1.05;
      this.#floor = Math.min(current, this.#floor * 1.25);
      this.#windowsToProbe = raised ? 3 : o.probeEvery;
      return;
    }
    // Two readings of the queue; the larger gradient wins (see the header).
    const perToken = Math.min(1, this.#floor / current);
    // A window too small to fit alone (few slots) is fitted with the one before it.
    const previousAnswers = this.#smallWindow;
    this.#smallWindow = latencies.length < MIN_FIT ? { latencies, tokens } : undefined;
    const fitted =
      fit ??
      (previousAnswers && !probed
        ? fitLatency([...previousAnswers.latencies, ...latencies], [...previousAnswers.tokens, ...tokens])
        : undefined);
    // When both read a queue, their mean: the per-token reading over-reads one on an engine that
    // slows as its batch fills, and the fit's wait under-reads a queue whose waits vary a lot
    // (few slots); the larger alone left a standing queue (27 of the 32 flow-model shapes queue
    // less with the mean, none serves less).
    const byWait = fitted !== undefined && this.#baseWait !== null ? waitGradient(fitted, this.#baseWait) : undefined;
    const gradient =
      byWait === undefined
        ? perToken
        : byWait < this.#queued && perTokenRose
          ? (perToken + byWait) / 2
          : Math.max(perToken, byWait);
    const previous = this.#lastWindow;
    this.#lastWindow = { level: windowLimit, latency: current };
    if (this.#phase === "slow-start" && gradient < this.#queued && previous !== undefined) {
      // Latency rose: the engine queues, or it slows down per token as its batch fills (real
      // engines do; the simulator's stepGrowth). Only queueing stops throughput (Little's law:
      // level / latency) from growing with the in-flight level, so slow start goes on while
      // throughput still grows by at least THROUGHPUT_ELASTICITY of the level's growth.
      const levelGrowth = windowLimit / previous.level;
      const throughputGrowth = windowLimit / current / (previous.level / previous.latency);
      if (levelGrowth > 1 && throughputGrowth - 1 >= THROUGHPUT_ELASTICITY * (levelGrowth - 1)) {
        this.#serving = windowLimit;
        return;
      }
    }
    this.#serving = windowLimit * gradient;
    const target = this.#limit * gradient + Math.sqrt(this.#limit);
    if (this.#phase === "slow-start") {
      if (gradient >= this.#queued) return;
      // Slow start overshoots by up to a round trip: come back at once, not over many windows,
      // but not below half the limit, which the round before ran without queueing.
      this.#phase = "avoidance";
      this.#set(Math.min(this.#limit, Math.max(target, this.#limit / 2)), "gradient");
    } else if (busy || target < this.#limit) {
      // Smoothed: one window's reading is noisy (prompts that hit or miss the prefix cache).
      let next = this.#limit * (1 - o.smoothing) + target * o.smoothing;
      // Busy windows that queue nothing at all, several in a row: slow start ended early (a noisy
      // window) or the engine got faster. Grow by a quarter per window, not by √limit·smoothing.
      this.#unqueuedStreak = busy && gradient >= UNQUEUED ? this.#unqueuedStreak + 1 : 0;
      if (this.#unqueuedStreak >= 3) next = Math.max(next, this.#limit * 1.25);
      this.#set(next, "gradient");
    }
    if (--this.#windowsToProbe <= 0) this.#probing = true;
  }

  /**
   * The base wait. First: a fit of slow start's first answers, pooled to POOLED_FIT (its first
   * windows queue nothing; later slow-start windows may), or fewer (at least MIN_FIT) when a
   * window's latency per token rose before the pool was full. Then probe windows, which queue nothing
   * either, re-measure it: the median of the last three readings, so a longer prompt (a longer
   * prefill) is re-learned and one noisy fit is not. Other windows only pull it down, by a quarter
   * of the gap: not a running minimum, which noise ratchets down until the standing queue is read
   * as base and the limit sinks below the slots.
   */
  #learnBaseWait(
    fit: LatencyFit | undefined,
    latencies: number[],
    tokens: number[],
    probed: boolean,
    /** This window's latency per token rose past the tolerance over the floor. */
    perTokenRose: boolean,
  ): void {
    let wait = fit?.wait;
    // The first base, and windows too small to fit alone: pooled (a fit of few answers is noisy).
    if (fit === undefined || this.#baseWait === null) {
      // With few slots slow start queues before it has pooled 32 answers (8 slots: its third
      // window), and a base fitted on queued answers hides the queue for good. So once latency
      // per token rises, the first base is fitted on the answers before, if they are enough to fit.
      const early = this.#baseWait === null && perTokenRose && this.#pool.latencies.length >= MIN_FIT;
      if (!early) {
        this.#pool.latencies.push(...latencies);
        this.#pool.tokens.push(...tokens);
      }
      if (!early && this.#pool.latencies.length < POOLED_FIT) return;
      wait = fitLatency(this.#pool.latencies, this.#pool.tokens)?.wait;
      this.#pool = { latencies: [], tokens: [] };
      probed = false;
    }
    if (wait === undefined) return;
    if (this.#baseWait === null) {
      this.#baseWait = wait;
    } else if (this.#phase === "slow-start") {
      return;
    } else if (probed) {
      if (this.#probeWaits.length === 0) this.#probeWaits.push(this.#baseWait);
      this.#probeWaits.push(wait);
      if (this.#probeWaits.length > 3) this.#probeWaits.shift();
      this.#baseWait = quantile(this.#probeWaits, 0.5, "lower");
    } else if (wait < this.#baseWait) {
      this.#baseWait += 0.25 * (wait - this.#baseWait);
    }
  }

  /** After enough busy windows pressed against the ceiling, let it rise by 5% (at least one). */
  #probeCeiling(busy: boolean): void {
    if (!Number.isFinite(this.#ceiling) || !busy || this.#limit < this.#ceiling) return;
    if (++this.#windowsAtCeiling < this.#o.ceilingProbeEvery) return;
    this.#windowsAtCeiling = 0;
    this.#sentSinceOverload = 0;
    this.#ceiling += Math.max(1, Math.round(this.#ceiling * 0.05));
    this.#set(this.#ceiling, "ceiling");
  }

  #set(limit: number, reason: string): void {
    const before = this.limit;
    this.#limit = clamp(limit, this.#o.minLimit, Math.min(this.#o.maxLimit, this.#ceiling));
    if (this.limit !== before) this.onChange?.(this.snapshot(), reason);
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/** Nearest-rank quantile q ∈ [0, 1] of a non-empty list ("lower": the lower of two middles). */
function quantile(values: number[], q: number, rank: "upper" | "lower" = "upper"): number {
  const sorted = [...values].sort((a, b) => a - b);
  const i = rank === "upper" ? Math.floor(q * sorted.length) : Math.floor(q * (sorted.length - 1));
  return sorted[Math.min(sorted.length - 1, i)] as number;
}

/** A window's latencies as wait + perToken × tokens; `typical` is the fit at the median length. */
export interface LatencyFit {
  wait: number;
  perToken: number;
  typical: number;
}

/**
 * A window's latencies as wait + perToken × completion tokens. perToken: the median slope between
 * pairs of one answer from the shortest third and one from the longest (Theil–Sen); wait: a low
 * quantile (LATENCY_QUANTILE) of latency − perToken × tokens over all answers. Queueing delays a
 * request before its first token, whatever its length, so it raises `wait`; an engine that slows
 * per token as its batch fills raises `perToken` instead. `typical` is the fitted latency at the
 * median length. Undefined when lengths vary too little to tell the two apart (fixed max_tokens,
 * embeddings) or the window is too small.
 */
export function fitLatency(latencies: number[], tokens: number[]): LatencyFit | undefined {
  const n = latencies.length;
  if (n < MIN_FIT) return undefined;
  const order = tokens.map((_, i) => i).sort((a, b) => (tokens[a] as number) - (tokens[b] as number));
  const third = Math.floor(n / 3);
  // At most 48 × 48 pairs: enough for a median, cheap at any window size.
  const stride = Math.max(1, Math.floor(third / 48));
  const low = order.slice(0, third).filter((_, j) => j % stride === 0);
  const high = order.slice(n - third).filter((_, j) => j % stride === 0);
  const medianLength = (indices: number[]) =>
    quantile(
      indices.map((i) => tokens[i] as number),
      0.5,
    );
  const kLow = medianLength(low);
  const kHigh = medianLength(high);
  if (kHigh < kLow * 1.5 + 2) return undefined;
  const slopes: number[] = [];
  for (const a of low) {
    for (const b of high) {
      const dk = (tokens[b] as number) - (tokens[a] as number);
      if (dk > 0) slopes.push(((latencies[b] as number) - (latencies[a] as number)) / dk);
    }
  }
  if (slopes.length === 0) return undefined;
  const perToken = quantile(slopes, 0.5);
  if (!(perToken > 0)) return undefined;
  // Below zero is noise: time that does not grow with the length is never negative.
  const residuals = latencies.map((l, i) => l - perToken * (tokens[i] as number));
  const wait = Math.max(0, quantile(residuals, LATENCY_QUANTILE));
  return { wait, perToken, typical: wait + perToken * quantile(tokens, 0.5) };
}

/** The gradient from a fit: the typical latency with the base wait over that with this window's. */
function waitGradient(fit: LatencyFit, baseWait: number): number {
  const typical = Math.max(fit.typical, 1e-9);
  return Math.min(1, Math.max(0, typical - (fit.wait - baseWait)) / typical);
}
