/**
 * Retry policy as data: which results retry, and after how long. `retry-after-ms` wins over
 * `retry-after` (already merged into `retryAfterMs` by the backend); otherwise capped, jittered
 * exponential backoff. Everything not listed is final.
 */
import type { BackendResult } from "../backends/backend.js";

export interface RetryPolicy {
  /** Total attempts per request, the first included. */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest server-requested delay honoured; longer hints are clamped to this. */
  maxRetryAfterMs: number;
  /** HTTP statuses that retry (besides every 5xx). */
  retryStatuses: readonly number[];
  /** Whether every 5xx retries. */
  retryServerErrors: boolean;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 60_000,
  maxRetryAfterMs: 10 * 60_000,
  retryStatuses: [408, 409, 425, 429],
  retryServerErrors: true,
};

export type Verdict = { kind: "success" } | { kind: "final" } | { kind: "retry"; delayMs: number };

export function isRetryable(policy: RetryPolicy, result: BackendResult): boolean {
  if (result.kind === "failure") return result.retryable;
  if (result.status >= 500) return policy.retryServerErrors;
  return policy.retryStatuses.includes(result.status);
}

/** Decides what happens after attempt number `attempt` (1-based) produced `result`. */
export function decide(policy: RetryPolicy, result: BackendResult, attempt: number, random = Math.random): Verdict {
  if (result.kind === "response" && result.status >= 200 && result.status < 300) return { kind: "success" };
  if (!isRetryable(policy, result) || attempt >= policy.maxAttempts) return { kind: "final" };
  return { kind: "retry", delayMs: retryDelay(policy, result, attempt, random) };
}

export function retryDelay(policy: RetryPolicy, result: BackendResult, attempt: number, random = Math.random): number {
  if (result.kind === "response" && result.retryAfterMs !== null) {
    return Math.min(Math.max(0, result.retryAfterMs), policy.maxRetryAfterMs);
  }
  return backoffDelay(attempt, policy.baseDelayMs, policy.maxDelayMs, random);
}

/** Capped exponential backoff after attempt number `attempt` (1-based), with equal jitter. */
export function backoffDelay(attempt: number, baseDelayMs: number, maxDelayMs: number, random = Math.random): number {
  const exp = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  // "Equal jitter": half fixed, half random, so retries spread out but never come back instantly.
  return Math.round(exp / 2 + (random() * exp) / 2);
}

/**
 * Batch jobs (validate, complete, expire, cancel, finalize) that throw something unexpected (a
 * bug, the store or S3 unreachable) retry after a capped, jittered backoff; after `maxAttempts`
 * failures in a row the batch fails with `batch_job_failed`. Defaults: 8 attempts over about
 * 2–4 minutes (2 s, 4 s, … capped at 2 min). Counted per worker process.
 */
export interface JobRetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_JOB_RETRY: JobRetryPolicy = { maxAttempts: 8, baseDelayMs: 2_000, maxDelayMs: 120_000 };
