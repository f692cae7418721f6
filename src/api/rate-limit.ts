/**
 * Per-key rate limit on the API: a token bucket per API key (SLUICE_API_KEY counts as one key),
 * refilled continuously. An empty bucket answers 429 in the OpenAI envelope with `retry-after`
 * and `retry-after-ms` (which the official SDKs honour). Buckets live in the process: with N API
 * replicas behind a balancer a key gets up to N times the rate (documented in docs/security.md).
 */
import type { FastifyInstance } from "fastify";
import { LimitError } from "../tenancy/limit-error.js";

export interface RateLimitOptions {
  perSecond: number;
  burst: number;
  now?: () => number;
}

const MAX_BUCKETS = 10_000;

export class TokenBuckets {
  readonly #o: Required<RateLimitOptions>;
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: RateLimitOptions) {
    this.#o = { now: () => performance.now(), ...options };
  }

  /** Takes one token; returns 0 when allowed, else the milliseconds until one is available. */
  take(key: string): number {
    const now = this.#o.now();
    const { perSecond, burst } = this.#o;
    const b = this.#buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    this.#buckets.delete(key);
    this.#buckets.set(key, b);
    if (this.#buckets.size > MAX_BUCKETS) this.#buckets.delete(this.#buckets.keys().next().value as string);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / perSecond) * 1000);
  }
}

/** Must be installed after auth: the bucket is chosen by the authenticated key. */
export function installRateLimit(app: FastifyInstance, options: RateLimitOptions): void {
  if (options.perSecond <= 0) return;
  const buckets = new TokenBuckets(options);
  app.addHook("onRequest", async (request) => {
    const p = request.principal;
    if (p === null || p === undefined) return;
    const waitMs = buckets.take(p.keyId ?? `env:${p.tenantId}`);
    if (waitMs === 0) return;
    throw new LimitError("rate_limit_exceeded", `Rate limit reached for this API key; retry in ${waitMs} ms.`, {
      status: 429,
      headers: { "retry-after": String(Math.ceil(waitMs / 1000)), "retry-after-ms": String(waitMs) },
    });
  });
}
