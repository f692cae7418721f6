import { describe, expect, it } from "vitest";
import { runEngineModel } from "../../bench/lib/engine-model.js";
import { parseRetryAfter } from "../../src/backends/retry-after.js";
import { DEFAULT_RETRY_POLICY, decide, retryDelay } from "../../src/dispatch/retry-policy.js";
import { FlowController, fitLatency } from "../../src/flow/flow-control.js";

/**
 * A closed-loop model of an engine with `slots` parallel slots: a request in flight when more
 * than `slots` are in flight waits its turn, so its latency grows by inFlight/slots.
 */
function drive(slots: number, rounds: number, opts: { overloadAbove?: number; slowerAfter?: number } = {}) {
  let now = 0;
  const flow = new FlowController({}, () => now);
  const limits: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const n = flow.available();
    for (let i = 0; i < n; i++) flow.acquire();
    const base = opts.slowerAfter !== undefined && r >= opts.slowerAfter ? 250 : 100;
    const latency = base * Math.max(1, n / slots);
    now += latency;
    for (let i = 0; i < n; i++) {
      const overload = opts.overloadAbove !== undefined && i >= opts.overloadAbove;
      flow.release(overload ? "overload" : "ok", latency * (1 + (i % 7) / 50), 10);
    }
    limits.push(flow.limit);
  }
  return limits;
}

/** The event-driven engine model of bench/lib/engine-model.ts: [ms, limit] after every answer. */
const runEngine = (slots: number, stepGrowth: number, untilMs: number) =>
  runEngineModel({ slots, stepGrowth, untilMs }).trace;

describe("adaptive concurrency", () => {
  for (const slots of [8, 64, 256]) {
    it(`finds and holds ${slots} slots without being told`, () => {
      const limits = drive(slots, 120);
      const settled = limits.slice(-40);
      // Saturated (≥ slots in flight) but not flooding (a bounded queue of about √slots).
      expect(Math.min(...settled)).toBeGreaterThanOrEqual(slots * 0.98);
      expect(Math.max(...settled)).toBeLessThanOrEqual(slots + 3 * Math.sqrt(slots) + 2);
      // Ramps fast: within a handful of windows of the start.
      const firstSaturated = limits.findIndex((l) => l >= slots);
      expect(firstSaturated).toBeLessThan(Math.ceil(Math.log2(slots)) + 4);
    });
  }

  /**
   * A process that takes in answers at a fixed cost each against an engine that answers at once:
   * latency is the process's own queue, n × cost (Little's law), as an engine queue would grow.
   * Its meter reports the loop busy and a wait of `waitShare` of the latency.
   */
  function driveClientBound(
    rounds: number,
    waitShare: number,
    latencyOf = (n: number) => 0.05 * n,
    utilization = 0.97,
  ) {
    let now = 0;
    let latency = 1;
    const meter = { read: () => ({ utilization, delayMs: latency * waitShare }) };
    const flow = new FlowController({}, () => now, meter);
    const limits: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const n = flow.available();
      for (let i = 0; i < n; i++) flow.acquire();
      latency = latencyOf(n);
      now += latency;
      for (let i = 0; i < n; i++) flow.release("ok", latency * (1 + (i % 7) / 50), 16);
      limits.push(flow.limit);
    }
    return limits;
  }

  it("when this process, not the engine, is the bottleneck, raises the limit to 64 and holds it", () => {
    const limits = driveClientBound(300, 0.8);
    const settled = limits.slice(-100);
    expect(Math.min(...settled)).toBeGreaterThanOrEqual(48); // ¾ of 64 during probes
    expect(Math.max(...settled)).toBeLessThanOrEqual(128); // slow start overshoots by a round at most
    expect(settled.filter((l) => l >= 64).length).toBeGreaterThan(80);
    // Without knowing its own load, the same process reads its queue as the engine's: ~10 held.
    const blind = (() => {
      let now = 0;
      const flow = new FlowController({}, () => now);
      const out: number[] = [];
      for (let r = 0; r < 300; r++) {
        const n = flow.available();
        for (let i = 0; i < n; i++) flow.acquire();
        const latency = 0.05 * n;
        now += latency;
        for (let i = 0; i < n; i++) flow.release("ok", latency * (1 + (i % 7) / 50), 16);
        out.push(flow.limit);
      }
      return out;
    })();
    expect(Math.max(...blind.slice(-100))).toBeLessThan(32);
  });

  it("still reads an engine's queue when callbacks run late because the machine is short of CPU, not busy here", () => {
    // Late callbacks, but a loop busy only part of the time: this process mostly waits on the
    // engine (16 slots, 100 ms). (A bar of 0.5 busy read this as client-bound.)
    const limits = driveClientBound(300, 0.8, (n) => 100 * Math.max(1, n / 16), 0.6);
    const settled = limits.slice(-100);
    expect(Math.max(...settled)).toBeLessThanOrEqual(16 + 3 * 4 + 2);
    expect(Math.min(...settled)).toBeGreaterThanOrEqual(12);
  });

  it("still reads an engine's queue when this process's own wait is a small share of the latency", () => {
    // The engine of `drive`: 16 slots, 100 ms a request, the surplus queues.
    const limits = driveClientBound(300, 0.05, (n) => 100 * Math.max(1, n / 16));
    const settled = limits.slice(-100);
    expect(Math.max(...settled)).toBeLessThanOrEqual(16 + 3 * 4 + 2);
    expect(Math.min(...settled)).toBeGreaterThanOrEqual(12);
  });

  it("stays put over a long run (the floor does not drift with the standing queue)", () => {
    const limits = drive(64, 600);
    expect(Math.max(...limits.slice(-200))).toBeLessThanOrEqual(64 + 3 * 8 + 2);
    expect(Math.min(...limits.slice(-200))).toBeGreaterThanOrEqual(48); // ¾ during probes
  });

  it("re-learns when the work itself gets slower (longer prompts, another model)", () => {
    const limits = drive(32, 300, { slowerAfter: 100 });
    const settled = limits.slice(-50);
    expect(Math.min(...settled)).toBeGreaterThanOrEqual(24);
    expect(Math.max(...settled)).toBeLessThanOrEqual(32 + 3 * Math.sqrt(32) + 2);
    expect(limits.slice(-50).filter((l) => l >= 32).length).toBeGreaterThan(40);
  });

  it("backs off multiplicatively on 429/503", () => {
    const limits = drive(1000, 30, { overloadAbove: 40 });
    // The engine refuses beyond 40 concurrent: the limit must stay around it, not run away.
    expect(Math.max(...limits.slice(-10))).toBeLessThan(120);
  });

  it("leaving slow start, steps back at once and settles near the slots", () => {
    const slots = 32;
    const trace = runEngine(slots, 0, 40_000);
    const peak = Math.max(...trace.map(([, l]) => l));
    expect(peak).toBeGreaterThan(slots * 1.5); // the overshoot this test is about did happen
    // At once (to limit·g + √limit, at least half the limit), not over many smoothed windows (a
    // smoothed step keeps more than 0.7 of the limit)…
    const stepBack = trace.slice(trace.findIndex(([, l]) => l === peak)).find(([, l]) => l < peak);
    expect(stepBack?.[1]).toBeLessThan(peak * 0.7);
    // …then saturated, without a standing queue, for the rest of the run.
    const settled = trace.filter(([t]) => t > 20_000).map(([, l]) => l);
    expect(Math.min(...settled)).toBeGreaterThanOrEqual(slots * 0.75); // ¾ during floor probes
    expect(Math.max(...settled)).toBeLessThanOrEqual(slots + 3 * Math.sqrt(slots) + 2);
  });

  it("does not end slow start at an engine's batch-size slowdown (throughput still grows)", () => {
    // Step time ×2 at a full batch: per-token latency at 16 in flight is already 1.5× that at 4.
    // Read as queueing, slow start ended at 32 and stepped back to ~15 of 32 slots (0.67 of the
    // best fixed client in bench/efficiency.ts).
    const slots = 32;
    const trace = runEngine(slots, 1, 15_000);
    const peak = Math.max(...trace.map(([, l]) => l));
    expect(peak).toBeGreaterThan(slots * 1.5);
    const afterPeak = trace.slice(trace.findIndex(([, l]) => l === peak));
    const firstSeconds = afterPeak.filter(([t]) => t < (afterPeak[0]?.[0] ?? 0) + 5_000).map(([, l]) => l);
    expect(Math.min(...firstSeconds)).toBeGreaterThanOrEqual(slots);
  });

  for (const [slots, growth] of [
    [32, 1],
    [128, 1],
    [32, 3],
    [128, 3],
  ] as const) {
    it(`holds ${slots} slots for minutes when the step time grows ×${1 + growth} with the batch`, () => {
      // The per-token latency alone read the batch slowdown as a queue: the limit sank to ~⅔ of
      // 32 slots and ~½ of 128 (¼ at ×4). The fit tells a queue (wait before the first token)
      // from a slower step (time per token), so the limit holds the slots plus a small queue.
      const run = runEngineModel({ slots, stepGrowth: growth, untilMs: 120_000, measureFromMs: 40_000 });
      expect(run.meanLimit).toBeGreaterThanOrEqual(slots);
      expect(run.meanLimit).toBeLessThanOrEqual(slots + 3 * Math.sqrt(slots) + 2);
      expect(run.utilization).toBeGreaterThan(0.95);
    });
  }

  it("with 8 slots, keeps the engine's standing queue smaller than its slots (a first base wait fitted before the queue)", () => {
    // Slow start passes 8 slots in its third window, inside the 32 answers its first base wait
    // was fitted on: that base included queued answers, the wait reading then hid the queue, and
    // the limit held ~20–24 with a queue of 11–16 (4 seeds: mean 14.8). Now 7–10 (mean 7.9).
    const runs = [1, 2, 3, 4].map((seed) =>
      runEngineModel({ slots: 8, stepGrowth: 0, seed, untilMs: 120_000, measureFromMs: 30_000 }),
    );
    const meanQueue = runs.reduce((sum, r) => sum + r.meanQueue, 0) / runs.length;
    expect(meanQueue).toBeLessThan(10);
    for (const r of runs) expect(r.utilization).toBeGreaterThan(0.95);
  });

  it("re-learns the wait when prompts get longer (a longer prefill is not a queue)", () => {
    // At 40 s every request gains 300 ms of prefill: the fit reads it as wait until the probe
    // windows re-measure the base (median of three), ~20 s later.
    const run = runEngineModel({
      slots: 32,
      stepGrowth: 1,
      untilMs: 120_000,
      measureFromMs: 70_000,
      longerPrompts: { fromMs: 40_000, ms: 300 },
    });
    expect(run.meanLimit).toBeGreaterThanOrEqual(32);
    expect(run.meanLimit).toBeLessThanOrEqual(32 + 3 * Math.sqrt(32) + 2);
    expect(run.utilization).toBeGreaterThan(0.95);
  });

  it("never exceeds a known cap", () => {
    let now = 0;
    const flow = new FlowController({ maxLimit: 16 }, () => now);
    for (let r = 0; r < 50; r++) {
      for (let i = 0; i < flow.limit; i++) flow.acquire();
      now += 10;
      const n = flow.inFlight;
      for (let i = 0; i < n; i++) flow.release("ok", 10, 5);
    }
    expect(flow.limit).toBe(16);
  });
});

describe("retry policy", () => {
  const ok = {
    kind: "response",
    status: 200,
    bodyText: "{}",
    requestId: null,
    usage: null,
    retryAfterMs: null,
  } as const;
  it("classifies results", () => {
    expect(decide(DEFAULT_RETRY_POLICY, ok, 1)).toEqual({ kind: "success" });
    for (const status of [408, 429, 500, 502, 503, 504]) {
      expect(decide(DEFAULT_RETRY_POLICY, { ...ok, status }, 1).kind).toBe("retry");
    }
    for (const status of [400, 401, 403, 404, 422])
      expect(decide(DEFAULT_RETRY_POLICY, { ...ok, status }, 1).kind).toBe("final");
    expect(decide(DEFAULT_RETRY_POLICY, { ...ok, status: 500 }, DEFAULT_RETRY_POLICY.maxAttempts).kind).toBe("final");
    const reset = { kind: "failure", code: "connection_error", message: "x", retryable: true } as const;
    expect(decide(DEFAULT_RETRY_POLICY, reset, 1).kind).toBe("retry");
    expect(decide(DEFAULT_RETRY_POLICY, { ...reset, retryable: false }, 1).kind).toBe("final");
  });
  it("honours retry-after-ms before retry-after, and backs off with capped jitter", () => {
    expect(parseRetryAfter("250", "9")).toBe(250);
    expect(parseRetryAfter(undefined, "2")).toBe(2000);
    expect(parseRetryAfter(undefined, new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
    expect(parseRetryAfter(undefined, undefined)).toBeNull();
    expect(retryDelay(DEFAULT_RETRY_POLICY, { ...ok, status: 429, retryAfterMs: 1234 }, 1)).toBe(1234);
    const p = DEFAULT_RETRY_POLICY;
    const e = { ...ok, status: 503 };
    expect(retryDelay(p, e, 1, () => 0)).toBe(p.baseDelayMs / 2);
    expect(retryDelay(p, e, 1, () => 1)).toBe(p.baseDelayMs);
    expect(retryDelay(p, e, 30, () => 1)).toBe(p.maxDelayMs);
  });
});

describe("fitLatency: queue wait apart from time per token", () => {
  /** Answers of 5–60 tokens: latency = wait + perToken × tokens (+ a prefill for cache misses). */
  const answers = (wait: number, perToken: number, missPrefill = 0, missEvery = 0) => {
    const latencies: number[] = [];
    const tokens: number[] = [];
    for (let i = 0; i < 120; i++) {
      const k = 5 + ((i * 37) % 56);
      const miss = missEvery > 0 && i % missEvery === 0 ? missPrefill : 0;
      latencies.push(wait + miss + perToken * k + ((i * 13) % 7));
      tokens.push(k);
    }
    return { latencies, tokens };
  };

  it("reads a queue as wait and a slower step as time per token", () => {
    const base = answers(20, 10);
    const queued = answers(400, 10);
    const slower = answers(20, 20);
    const fitOf = (a: ReturnType<typeof answers>) => fitLatency(a.latencies, a.tokens);
    expect(fitOf(base)?.wait).toBeCloseTo(20, -1);
    expect(fitOf(base)?.perToken).toBeCloseTo(10, 0);
    expect(fitOf(queued)?.wait).toBeCloseTo(400, -1);
    expect(fitOf(queued)?.perToken).toBeCloseTo(10, 0);
    expect(fitOf(slower)?.wait).toBeCloseTo(20, -1);
    expect(fitOf(slower)?.perToken).toBeCloseTo(20, 0);
    expect(fitOf(slower)?.typical).toBeGreaterThan(fitOf(base)?.typical as number);
  });

  it("reads the faster mode when a third of the answers miss a prefix cache", () => {
    const bimodal = answers(20, 10, 300, 3);
    const fit = fitLatency(bimodal.latencies, bimodal.tokens);
    expect(fit?.wait).toBeLessThan(40);
    expect(fit?.perToken).toBeCloseTo(10, 0);
  });

  it("declines when lengths hardly vary (fixed max_tokens, embeddings) or answers are few", () => {
    expect(fitLatency([100, 110, 105, 98, 120, 101, 99, 104, 103, 100, 102, 108], new Array(12).fill(8))).toBe(
      undefined,
    );
    expect(fitLatency([100, 200, 300], [1, 10, 20])).toBe(undefined);
  });
});
