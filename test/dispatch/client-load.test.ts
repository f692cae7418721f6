/**
 * The client-load meter (flow control's "client-bound" reading) against this test's own event
 * loop: kept busy in 20 ms blocks it reads busy, with callbacks waiting; left idle it reads idle.
 * (Blocks shorter than the 10 ms timer under-read the wait: see client-load.ts.)
 */
import { describe, expect, it } from "vitest";
import { clientLoadMeter } from "../../src/flow/client-load.js";

const busyFor = (ms: number) =>
  new Promise<void>((resolve) => {
    const end = performance.now() + ms;
    const block = () => {
      const until = Math.min(end, performance.now() + 20);
      while (performance.now() < until) {
        // spin: this process is the bottleneck
      }
      if (performance.now() < end) setImmediate(block);
      else resolve();
    };
    block();
  });

describe("client load meter", () => {
  it("reads a busy loop as busy, with callbacks waiting for it, and an idle one as idle", async () => {
    const meter = clientLoadMeter();
    await busyFor(450);
    const busy = meter.read();
    expect(busy.utilization).toBeGreaterThan(0.75);
    expect(busy.delayMs).toBeGreaterThan(2);
    await new Promise((r) => setTimeout(r, 450));
    meter.read();
    await new Promise((r) => setTimeout(r, 450));
    const idle = meter.read();
    expect(idle.utilization).toBeLessThan(0.5);
  });
});
