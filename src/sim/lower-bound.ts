/**
 * A lower bound on the makespan of the work served since the last reset, valid for ANY order and
 * timing in which a client could have sent those requests (derivation in docs/simulator.md):
 *
 *   LB = max( max_i s_i , (Σ_i s_i + B·|D|·prefillMsPerToken) / slots )
 *   s_i = c_i·stepMs + t_i·prefillMsPerToken
 *
 * where c_i is request i's completion tokens, t_i its prompt tokens that can never come from the
 * cache (the partial last block, or the whole prompt when it bypasses the cache), and D the set of
 * distinct cacheable blocks of all served requests: each must be prefilled at least once.
 */

// Past this many distinct blocks (~50 bytes each), new blocks are no longer counted: |D| is then
// under-counted, which keeps LB a valid (if looser) lower bound with bounded memory.
const MAX_TRACKED_BLOCKS = 4_000_000;

export interface LowerBoundCosts {
  slots: number;
  stepMs: number;
  prefillMsPerToken: number;
  blockSize: number;
}

export interface ServedWork {
  promptTokens: number;
  completionTokens: number;
  /** Cacheable block keys; empty when the request bypassed the cache. */
  keys: readonly number[];
}

export interface LowerBoundSnapshot {
  lowerBoundMs: number;
  longestRequestMs: number;
  totalWorkMs: number;
  decodeMs: number;
  prefillMs: number;
  distinctBlocks: number;
  /** False once the distinct-block set hit its memory cap (the bound is then looser). */
  exact: boolean;
}

export class LowerBound {
  readonly #costs: LowerBoundCosts;
  #distinct = new Set<number>();
  #exact = true;
  #longestMs = 0;
  #decodeTokens = 0;
  #tailTokens = 0;

  constructor(costs: LowerBoundCosts) {
    this.#costs = costs;
  }

  add(work: ServedWork): void {
    const tail = work.promptTokens - work.keys.length * this.#costs.blockSize;
    this.#tailTokens += tail;
    this.#decodeTokens += work.completionTokens;
    const minimal = work.completionTokens * this.#costs.stepMs + tail * this.#costs.prefillMsPerToken;
    if (minimal > this.#longestMs) this.#longestMs = minimal;
    for (const key of work.keys) {
      if (this.#distinct.size >= MAX_TRACKED_BLOCKS && !this.#distinct.has(key)) {
        this.#exact = false;
        continue;
      }
      this.#distinct.add(key);
    }
  }

  snapshot(): LowerBoundSnapshot {
    const { slots, stepMs, prefillMsPerToken, blockSize } = this.#costs;
    const decodeMs = this.#decodeTokens * stepMs;
    const prefillMs = (this.#tailTokens + this.#distinct.size * blockSize) * prefillMsPerToken;
    const totalWorkMs = decodeMs + prefillMs;
    return {
      lowerBoundMs: Math.max(this.#longestMs, totalWorkMs / slots),
      longestRequestMs: this.#longestMs,
      totalWorkMs,
      decodeMs,
      prefillMs,
      distinctBlocks: this.#distinct.size,
      exact: this.#exact,
    };
  }

  reset(): void {
    this.#distinct = new Set();
    this.#exact = true;
    this.#longestMs = 0;
    this.#decodeTokens = 0;
    this.#tailTokens = 0;
  }
}
