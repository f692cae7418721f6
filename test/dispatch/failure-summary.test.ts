/**
 * Failed calls summarised: one warn line per backend per interval, with counts by cause and how
 * many cost no attempt, never a line per call; nothing when nothing failed. Fake timers for the
 * interval.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { BackendResult } from "../../src/backends/backend.js";
import { FailureSummary } from "../../src/dispatch/failure-summary.js";
import type { Logger } from "../../src/logger.js";

const refused: BackendResult = {
  kind: "failure",
  code: "connection_error",
  message: "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9",
  retryable: true,
  unreached: true,
};
const http = (status: number): BackendResult => ({
  kind: "response",
  status,
  bodyText: "{}",
  requestId: null,
  usage: null,
  retryAfterMs: null,
});
const timeout: BackendResult = {
  kind: "failure",
  code: "timeout",
  message: "No answer within 5000 ms.",
  retryable: true,
};

function capture() {
  const warns: { msg: string; fields: Record<string, unknown> | undefined }[] = [];
  const logger: Logger = {
    info() {},
    debug() {},
    error() {},
    warn(msg, fields) {
      warns.push({ msg, fields });
    },
  };
  return { logger, warns };
}

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("FailureSummary", () => {
  it("writes one line per backend per interval, by cause, with the calls that cost no attempt", async () => {
    const { logger, warns } = capture();
    const summary = new FailureSummary(logger, 10_000);
    for (let i = 0; i < 800; i++) summary.failed("http://a/v1", refused, true);
    for (let i = 0; i < 12; i++) summary.failed("http://a/v1", http(500));
    summary.failed("http://b/v1", timeout);
    await vi.advanceTimersByTimeAsync(9_999);
    expect(warns).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(warns.map((w) => w.msg)).toEqual([
      "backend http://a/v1: 812 calls failed in 10 s (ECONNREFUSED 800, HTTP 500 12); 800 did not count against their lines' attempts",
      "backend http://b/v1: 1 calls failed in 10 s (timeout 1)",
    ]);
    expect(warns[0]?.fields).toEqual({
      backend: "http://a/v1",
      failed: 812,
      unspentAttempts: 800,
      causes: { ECONNREFUSED: 800, "HTTP 500": 12 },
      seconds: 10,
    });
    summary.close();
  });

  it("writes nothing for an interval without failures, and starts a new interval at the next one", async () => {
    const { logger, warns } = capture();
    const summary = new FailureSummary(logger, 10_000);
    summary.failed("http://a/v1", http(429));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(warns).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(warns).toHaveLength(1);
    summary.failed("http://a/v1", http(429));
    await vi.advanceTimersByTimeAsync(3_000);
    summary.close(); // flushes what was counted: 3 s of it
    expect(warns.map((w) => w.msg)).toEqual([
      "backend http://a/v1: 1 calls failed in 10 s (HTTP 429 1)",
      "backend http://a/v1: 1 calls failed in 3 s (HTTP 429 1)",
    ]);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(warns).toHaveLength(2);
  });
});
