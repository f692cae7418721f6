/**
 * An event-driven model of an inference engine, driven by a FlowController in virtual time: no
 * processes, no clock, so minutes of traffic take milliseconds and every run is reproducible.
 * `slots` sequences decode at once, 10–40 tokens each at 10 ms a token × (1 + stepGrowth ×
 * running / slots) (fixed at admission, like the simulator's `stepGrowth`); the rest wait in FIFO
 * order. With `missRate` > 0 that share of requests first spends `missPrefillMs` in its slot (a
 * prefix-cache miss), which makes latencies bimodal. Answers come back a round trip after the
 * limit changed, so slow start overshoots as it does against a real engine.
 *
 * Used by bench/flow-model.ts and the flow-control unit tests.
 */
import { FlowController, type FlowOptions } from "../../src/flow/flow-control.js";

export interface EngineModel {
  slots: number;
  stepGrowth: number;
  /** Simulated milliseconds to run. */
  untilMs: number;
  seed?: number;
  missRate?: number;
  missPrefillMs?: number;
  /** From `fromMs` on, every request first spends `ms` more in its slot (longer prompts). */
  longerPrompts?: { fromMs: number; ms: number };
  /** Flow options; a fixed limit L is `{ initialLimit: L, minLimit: L, maxLimit: L }`. */
  flow?: Partial<FlowOptions>;
  /** Statistics cover [measureFromMs, untilMs]. */
  measureFromMs?: number;
}

export interface ModelRun {
  /** [ms, limit] after every answer. */
  trace: [number, number][];
  /** Time-weighted over the measured span. */
  meanLimit: number;
  meanQueue: number;
  utilization: number;
  /** Answers per second over the measured span. */
  rate: number;
}

/** A 31-bit linear congruential generator; `next()` uses its high bits (the low ones cycle). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s >>> 8;
  };
}

export function runEngineModel(m: EngineModel): ModelRun {
  const rnd = lcg(m.seed ?? 7);
  const missRate = m.missRate ?? 0;
  const from = m.measureFromMs ?? 0;
  let now = 0;
  const flow = new FlowController(m.flow ?? {}, () => now);
  let running = 0;
  const waiting: number[] = []; // send times
  const events: { at: number; sent: number; tokens: number }[] = [];
  const trace: [number, number][] = [];
  let limitArea = 0;
  let queueArea = 0;
  let runningArea = 0;
  let answered = 0;
  while (now < m.untilMs) {
    while (flow.available() > 0) {
      flow.acquire();
      waiting.push(now);
    }
    while (running < m.slots && waiting.length > 0) {
      const tokens = 10 + (rnd() % 31);
      let prefill = missRate > 0 && (rnd() % 1000) / 1000 < missRate ? (m.missPrefillMs ?? 300) : 0;
      if (m.longerPrompts !== undefined && now >= m.longerPrompts.fromMs) prefill += m.longerPrompts.ms;
      const step = 10 * (1 + (m.stepGrowth * running) / m.slots);
      running++;
      events.push({ at: now + prefill + step * tokens, sent: waiting.shift() as number, tokens });
    }
    events.sort((a, b) => a.at - b.at);
    const next = events.shift();
    if (next === undefined) break;
    if (next.at > from) {
      const dt = next.at - Math.max(now, from);
      limitArea += flow.limit * dt;
      queueArea += waiting.length * dt;
      runningArea += running * dt;
    }
    now = next.at;
    running--;
    if (now > from) answered++;
    flow.release("ok", now - next.sent, next.tokens);
    trace.push([now, flow.limit]);
  }
  const span = Math.max(1, now - from);
  return {
    trace,
    meanLimit: limitArea / span,
    meanQueue: queueArea / span,
    utilization: runningArea / span / m.slots,
    rate: (answered / span) * 1000,
  };
}
