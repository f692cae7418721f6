/**
 * A replica's learned call timeout: a call that hangs is abandoned after a few times what its
 * answer should take, not after the fixed timeout (10 minutes by default).
 *
 * From the last SAMPLES successful answers it keeps the 99th percentile of latency per output
 * token (`latency / (1 + output tokens)`, which covers an embedding's whole latency too). A call's
 * budget scales with the tokens it may generate: its own `max_tokens` when the body names one,
 * otherwise the most any answer has produced so far (twice over):
 *
 *   budget = max(FLOOR_MS, FACTOR × p99 per-token latency × (1 + tokens)) × 2^(attempt − 1)
 *
 * capped by the configured timeout. Doubling per attempt means a legitimately long generation
 * that was cut is given more room each time, never cut forever; a long `max_tokens` gets a long
 * budget. Until MIN_SAMPLES answers are in, the configured timeout applies unchanged.
 */

const SAMPLES = 256;
/** No call is hedged sooner than this (flow/call-timeout.ts `hedgeAfter`). */
export const HEDGE_FLOOR_MS = 500;
/** A call running this many times the p99 latency, at a batch's tail, gets a second copy. */
const HEDGE_FACTOR = 2;
const MIN_SAMPLES = 20;
/** How far above the 99th percentile a call may run before it counts as hung. */
const FACTOR = 4;
/** No learned budget is shorter than this. */
export const CALL_TIMEOUT_FLOOR_MS = 5_000;
/** The percentile is recomputed after this many new answers (sorting 256 numbers). */
const REFRESH_EVERY = 32;

export class CallTimeout {
  readonly #perToken = new Float64Array(SAMPLES);
  readonly #latency = new Float64Array(SAMPLES);
  #p99Latency = 0;
  #count = 0;
  #sinceRefresh = 0;
  #p99PerToken = 0;
  #maxTokensSeen = 0;

  /** A successful answer: its latency and how many tokens it produced. */
  observe(latencyMs: number, outputTokens: number): void {
    this.#perToken[this.#count % SAMPLES] = latencyMs / (1 + outputTokens);
    this.#latency[this.#count % SAMPLES] = latencyMs;
    this.#count++;
    if (outputTokens > this.#maxTokensSeen) this.#maxTokensSeen = outputTokens;
    if (++this.#sinceRefresh >= REFRESH_EVERY || this.#count === MIN_SAMPLES) this.#refresh();
  }

  /** The budget of a call (ms), or undefined before enough answers were seen (configured timeout). */
  budget(maxTokens: number | undefined, attempt: number): number | undefined {
    if (this.#count < MIN_SAMPLES) return undefined;
    const tokens = maxTokens ?? 2 * this.#maxTokensSeen;
    const base = Math.max(CALL_TIMEOUT_FLOOR_MS, FACTOR * this.#p99PerToken * (1 + tokens));
    return Math.round(base * 2 ** Math.min(10, Math.max(0, attempt - 1)));
  }

  /**
   * How long a call may run before a second copy of it is worth sending at a batch's tail (the
   * dispatcher hedges only when nothing else waits for the pool and a replica has room): a few
   * times the p99 latency, at least HEDGE_FLOOR_MS; undefined before enough answers were seen.
   */
  hedgeAfter(): number | undefined {
    if (this.#count < MIN_SAMPLES) return undefined;
    return Math.max(HEDGE_FLOOR_MS, HEDGE_FACTOR * this.#p99Latency);
  }

  #refresh(): void {
    this.#sinceRefresh = 0;
    const n = Math.min(this.#count, SAMPLES);
    const p99 = (values: Float64Array) => {
      const sorted = Array.from(values.subarray(0, n)).sort((a, b) => a - b);
      return sorted[Math.min(n - 1, Math.floor(n * 0.99))] ?? 0;
    };
    this.#p99PerToken = p99(this.#perToken);
    this.#p99Latency = p99(this.#latency);
  }
}

/**
 * The `max_tokens` (or `max_completion_tokens`) of a request body, read without parsing it: the
 * dispatcher sees each body as stored JSON text. Inside a string value a quote is escaped, so a
 * prompt that mentions `"max_tokens": 5` does not match.
 */
const MAX_TOKENS = /"max(?:_completion)?_tokens"\s*:\s*(\d{1,9})/;

export function maxTokensOf(body: string): number | undefined {
  const m = MAX_TOKENS.exec(body);
  return m === null ? undefined : Number(m[1]);
}
