/**
 * The engine's own retry hint, read by the backends into `BackendResult.retryAfterMs`; the retry
 * policy (src/dispatch/retry-policy.ts) prefers it to its own backoff.
 */

/** Parses `retry-after-ms` (ms) and `retry-after` (seconds or an HTTP date) response headers. */
export function parseRetryAfter(ms: string | undefined, after: string | undefined, now = Date.now()): number | null {
  if (ms !== undefined) {
    const v = Number(ms);
    if (Number.isFinite(v) && v >= 0) return v;
  }
  if (after !== undefined) {
    const s = Number(after);
    if (Number.isFinite(s) && s >= 0) return s * 1000;
    const date = Date.parse(after);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  return null;
}
