/**
 * An LRU prefix cache of prompt blocks keyed by hash chain (see tokenizer.ts). A request's blocks
 * become usable only once its prefill has finished (`commitAt`), so two requests admitted together
 * with the same new prefix both pay for it, as on a real engine. Blocks are touched in reverse
 * order (last block first), so eviction takes the tails of prompts before their shared roots,
 * like vLLM's free-block queue.
 */

import { LruSet } from "./lru-set.js";

interface PendingCommit {
  readyAt: number;
  keys: readonly number[];
  isLive: () => boolean;
}

export interface LookupResult {
  hitBlocks: number;
}

export class PrefixCache {
  readonly #capacity: number;
  readonly #blocks: LruSet;
  #pending: PendingCommit[] = [];

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#blocks = new LruSet(capacity);
  }

  get enabled(): boolean {
    return this.#capacity > 0;
  }

  get residentBlocks(): number {
    return this.#blocks.size;
  }

  /** Counts the leading blocks already resident at `now`, and marks them recently used. */
  lookup(keys: readonly number[], now: number): LookupResult {
    this.#flush(now);
    let hits = 0;
    while (hits < keys.length && this.#blocks.has(keys[hits] as number)) hits++;
    for (let i = hits - 1; i >= 0; i--) this.#blocks.touch(keys[i] as number);
    return { hitBlocks: hits };
  }

  /**
   * Makes `keys` resident at `readyAt` (the end of the prefill that computes them), unless
   * `isLive()` says by then that the request was cancelled before finishing its prefill.
   */
  commitAt(readyAt: number, keys: readonly number[], now: number, isLive: () => boolean): void {
    if (keys.length === 0 || !this.enabled) return;
    if (readyAt <= now) {
      this.#flush(now);
      this.#commit(keys);
    } else {
      this.#pending.push({ readyAt, keys, isLive });
    }
  }

  clear(): void {
    this.#blocks.clear();
    this.#pending = [];
  }

  #flush(now: number): void {
    if (this.#pending.length === 0) return;
    const ready = this.#pending.filter((p) => p.readyAt <= now);
    if (ready.length === 0) return;
    this.#pending = this.#pending.filter((p) => p.readyAt > now);
    ready.sort((a, b) => a.readyAt - b.readyAt);
    for (const p of ready) if (p.isLive()) this.#commit(p.keys);
  }

  #commit(keys: readonly number[]): void {
    for (let i = keys.length - 1; i >= 0; i--) this.#blocks.touch(keys[i] as number);
  }
}
