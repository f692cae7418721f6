/**
 * Seeded fault injection. The fault for the k-th arrival of a given request body is decided by
 * hash(seed, body, k), not by arrival order, so the same requests fault on every run even when a
 * client sends them concurrently, and a retried request gets a fresh draw on each attempt.
 */

import { mixKeys, unitFloat } from "./hash.js";
import type { FaultRates } from "./options.js";

export const FAULT_KINDS = ["error500", "error429", "reset", "hang"] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export class FaultInjector {
  readonly #rates: FaultRates;
  readonly #seed: number;
  readonly #enabled: boolean;
  // Attempts per request key. Only kept while some fault rate is non-zero; cleared on reset.
  #attempts = new Map<number, number>();

  constructor(rates: FaultRates, seed: number) {
    this.#rates = rates;
    this.#seed = seed;
    this.#enabled = FAULT_KINDS.some((k) => rates[k] > 0);
  }

  /** The fault to inject for this arrival of `requestKey`, if any. */
  decide(requestKey: number): FaultKind | undefined {
    if (!this.#enabled) return undefined;
    const attempt = this.#attempts.get(requestKey) ?? 0;
    this.#attempts.set(requestKey, attempt + 1);
    const u = unitFloat(mixKeys(this.#seed, requestKey, attempt));
    let threshold = 0;
    for (const kind of FAULT_KINDS) {
      threshold += this.#rates[kind];
      if (u < threshold) return kind;
    }
    return undefined;
  }

  reset(): void {
    this.#attempts = new Map();
  }
}
