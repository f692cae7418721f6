/**
 * Which results say "the engine is away" (they feed the breaker and cost no attempt in a run) and
 * which are the line's own outcome.
 */
import { describe, expect, it } from "vitest";
import type { BackendResult } from "../../src/backends/backend.js";
import { outageCause } from "../../src/dispatch/outage.js";

const response = (status: number, retryAfterMs: number | null = null): BackendResult => ({
  kind: "response",
  status,
  bodyText: "{}",
  requestId: null,
  usage: null,
  retryAfterMs,
});

const failure = (code: string, message: string, extra: { unreached?: true } = {}): BackendResult => ({
  kind: "failure",
  code,
  message,
  retryable: true,
  ...extra,
});

describe("outageCause", () => {
  it("reads answers the engine gave for this request as the line's own (200, 400, 429, 500)", () => {
    for (const status of [200, 400, 404, 429, 500]) expect(outageCause(response(status))).toBeNull();
    expect(outageCause(response(429, 1_000))).toBeNull();
  });

  it("reads 502, 503 and 504 as the engine being away", () => {
    expect(outageCause(response(502))).toBe("HTTP 502");
    expect(outageCause(response(503))).toBe("HTTP 503");
    expect(outageCause(response(504))).toBe("HTTP 504");
    // A hint on 502/504 changes nothing: a proxy's gateway error is still no engine.
    expect(outageCause(response(502, 1_000))).toBe("HTTP 502");
  });

  it("reads a 503 with a retry hint as the engine being away too (engines answer so while loading)", () => {
    expect(outageCause(response(503, 2_000))).toBe("HTTP 503");
    expect(outageCause(response(503, 0))).toBe("HTTP 503");
  });

  it("names the code of a connection error, and reads a cut call as a timeout", () => {
    const refused = failure("connection_error", "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9", {
      unreached: true,
    });
    expect(outageCause(refused)).toBe("ECONNREFUSED");
    expect(outageCause(failure("connection_error", "ECONNRESET: other side closed"))).toBe("ECONNRESET");
    expect(outageCause(failure("connection_error", ""))).toBe("connection error");
    expect(outageCause(failure("timeout", "No answer within 5000 ms."))).toBe("timeout");
  });

  it("reads invalid JSON from the engine, an abort and other failures as not an outage", () => {
    expect(
      outageCause(failure("invalid_response", "The backend answered 2xx with a body that is not JSON.")),
    ).toBeNull();
    expect(outageCause(failure("aborted", "The call was aborted."))).toBeNull();
    expect(outageCause(failure("backend_error", "boom"))).toBeNull();
  });
});
