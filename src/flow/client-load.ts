/**
 * How loaded this process is, for flow control (flow-control.ts, "client-bound"): how busy the
 * event loop was and how long a callback that became ready waited for it, since the last reading.
 *
 * When an engine answers faster than Sluice can take the answers in, the latency Sluice measures
 * is mostly its own queue: answers wait in socket buffers while the loop runs other callbacks
 * (and claims and checkpoints, a few milliseconds each). By Little's law that latency then grows
 * with the in-flight count exactly as an engine's queue would, and flow control held ~10 in flight
 * against an engine that answers at once, leaving this process idle between its own pauses.
 *
 * The wait is read from one process-wide `monitorEventLoopDelay` (a timer every 10 ms: how late it
 * fires is the wait of a callback that became ready when it was due); each meter reads its own
 * difference of the histogram's sum. A coarse reading: blocks much shorter than 10 ms can end just
 * as the timer falls due, so it under-reads their wait (5 ms blocks read ~0.3 ms, 20 ms blocks
 * ~10 ms), which errs toward not reading client-bound. The timer runs only while meters
 * are read (flow-control windows end), and stops 5 s after the last reading.
 */
import { type EventLoopUtilization, type IntervalHistogram, monitorEventLoopDelay, performance } from "node:perf_hooks";

export interface ClientLoad {
  /** Share of the time the event loop was busy (0–1). */
  utilization: number;
  /** Mean wait of a ready callback for the loop, in ms. */
  delayMs: number;
}

export interface ClientLoadMeter {
  /** The load over the last 200–400 ms (since the meter was made, at first). */
  read(): ClientLoad;
}

const RESOLUTION_MS = 10;
/** A reading spans at least this much (windows of a fast engine last a millisecond or two). */
const SPAN_MS = 200;
/** No reading for this long: the histogram's timer stops (an idle server wakes for nothing). */
const IDLE_MS = 5_000;
let histogram: IntervalHistogram | undefined;
let lastRead = 0;
let idleCheck: NodeJS.Timeout | undefined;

/** The shared histogram, recording while meters read it and for IDLE_MS after. */
function delayHistogram(): IntervalHistogram {
  histogram ??= monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  lastRead = performance.now();
  if (idleCheck === undefined) {
    const h = histogram;
    h.enable();
    idleCheck = setInterval(() => {
      if (performance.now() - lastRead < IDLE_MS) return;
      h.disable();
      clearInterval(idleCheck);
      idleCheck = undefined;
    }, IDLE_MS).unref();
  }
  return histogram;
}

interface Mark {
  at: number;
  elu: EventLoopUtilization;
  count: number;
  sum: number;
}

export function clientLoadMeter(): ClientLoadMeter {
  const mark = (): Mark => {
    const delays = delayHistogram();
    return {
      at: performance.now(),
      elu: performance.eventLoopUtilization(),
      count: delays.count,
      sum: delays.count === 0 ? 0 : delays.mean * delays.count,
    };
  };
  // Readings run from `older`; `newer` replaces it once SPAN_MS old.
  let older = mark();
  let newer = older;
  return {
    read() {
      const now = mark();
      if (now.at - newer.at >= SPAN_MS) {
        older = newer;
        newer = now;
      }
      const utilization = performance.eventLoopUtilization(now.elu, older.elu).utilization;
      // The histogram records each interval in ns: the resolution plus the lateness.
      const intervalMs = now.count > older.count ? (now.sum - older.sum) / (now.count - older.count) / 1e6 : 0;
      return { utilization, delayMs: Math.max(0, intervalMs - RESOLUTION_MS) };
    },
  };
}
