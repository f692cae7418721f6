/**
 * Which results say "the engine is away" rather than "this request failed": they feed the
 * replica's circuit breaker (flow/circuit-breaker.ts) and, in a run, cost the line no attempt.
 *
 * - No connection, or one that broke: refused, reset, DNS failure, no route, socket closed.
 * - A hung call abandoned at its learned budget (`timeout`): five in a row is a wedged engine.
 * - HTTP 502, 503, 504 (a proxy in front of a restarting engine, an engine still loading its
 *   model — some answer 503 with a `retry-after` for minutes while they do). A scattered 503 is
 *   retried like any error and slows flow control down; a run of them opens the breaker, whose
 *   probe and slow start are the right answer to an engine that cannot serve, loading or swamped.
 *
 * Everything else (any other HTTP answer, invalid JSON from the engine, a local engine's error)
 * is the line's own outcome and follows the retry policy.
 */
import type { BackendResult } from "../backends/backend.js";

/** The cause to log and record (`ECONNREFUSED`, `HTTP 502`, `timeout`), or null: not an outage. */
export function outageCause(result: BackendResult): string | null {
  if (result.kind === "response") {
    const s = result.status;
    if (s === 502 || s === 503 || s === 504) return `HTTP ${s}`;
    return null;
  }
  if (result.code === "connection_error") return result.message.split(":")[0] || "connection error";
  if (result.code === "timeout") return "timeout";
  return null;
}
