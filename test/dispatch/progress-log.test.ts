/** Progress lines: one per running batch per interval, with the rate since the last line. */
import { describe, expect, it } from "vitest";
import { ProgressLog } from "../../src/dispatch/progress-log.js";
import { createLogger } from "../../src/logger.js";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = new ProgressLog(
    createLogger("info", (l) => lines.push(JSON.parse(l) as Record<string, unknown>)),
    30_000,
  );
  return { lines, log };
}

const counters = (batchId: string, completed: number, failed = 0, total = 1000) => ({
  batchId,
  tenantId: "t1",
  completed,
  failed,
  total,
});

describe("progress log", () => {
  it("writes a line per batch once per interval, with its counts and rate, however many commits", () => {
    const { lines, log } = capture();
    log.observe([counters("a", 10), counters("b", 5)], 0);
    for (let t = 1_000; t < 30_000; t += 1_000) log.observe([counters("a", 10 + t / 100)], t);
    expect(lines).toEqual([]);
    log.observe([counters("a", 310, 20)], 30_000);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: "batch progress",
      batchId: "a",
      tenantId: "t1",
      completed: 310,
      failed: 20,
      total: 1000,
      requestsPerSecond: 10.7,
    });
    log.observe([counters("a", 400, 20)], 45_000);
    expect(lines).toHaveLength(1);
    log.observe([counters("a", 610, 20), counters("b", 35)], 60_000);
    expect(lines.map((l) => [l.batchId, l.requestsPerSecond])).toEqual([
      ["a", 10.7],
      ["a", 10],
      ["b", 0.5],
    ]);
  });

  it("writes nothing for a batch whose rows are all done (its end line says it)", () => {
    const { lines, log } = capture();
    log.observe([counters("a", 10)], 0);
    log.observe([counters("a", 990, 10)], 40_000);
    log.observe([counters("a", 990, 10)], 80_000);
    expect(lines).toEqual([]);
  });

  it("forgets a batch that stopped committing, and starts its interval over when it comes back", () => {
    const { lines, log } = capture();
    log.observe([counters("a", 10)], 0);
    log.observe([counters("b", 1)], 200_000); // "a" has been silent for more than 4 intervals
    log.observe([counters("a", 20)], 201_000);
    expect(lines).toEqual([]);
    log.observe([counters("a", 320)], 231_000);
    expect(lines).toMatchObject([{ batchId: "a", requestsPerSecond: 10 }]);
  });
});
