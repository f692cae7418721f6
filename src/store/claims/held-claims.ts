/**
 * The held claim source (SQLite: one process owns the store). A claim reads the next due pending
 * rows after the batch's cursor (held-claim.ts `readClaimable`) and holds their lines here until
 * their outcome is committed (`committed`) or they are handed back (`release`); held lines are read
 * past. Each claim is journalled (`claim_ranges`), and the entry is closed once none of its lines is
 * held any more; after a crash, `recover` counts an attempt for the lines of entries a dead process
 * left. The cursor wraps at the end of the batch, so retries that came due and rows handed back are
 * read again. A prefix-key claim reads from the start of the batch and leaves the cursor alone.
 */
import type { Store } from "../store.js";
import {
  type ClaimedRequest,
  type ClaimQuery,
  type ClaimSource,
  type ClaimSourceOptions,
  type Fence,
  HELD_FENCE,
  type RowKey,
} from "./claim-source.js";
import { closeClaimRanges, readClaimable, recoverClaimRanges } from "./held-claim.js";

/** A claim's journal entry and how many of its lines are still held. */
interface HeldRange {
  id: string;
  outstanding: number;
}

export class HeldClaims implements ClaimSource {
  readonly fence: Fence = HELD_FENCE;
  readonly #store: Store;
  readonly #o: ClaimSourceOptions;
  /** Per batch: the lines held, each with its journal entry. */
  readonly #held = new Map<string, Map<number, HeldRange>>();
  /** Per batch: the last line read (-1: from the start). */
  readonly #readFrom = new Map<string, number>();
  #closing: Promise<void> = Promise.resolve();

  constructor(store: Store, options: ClaimSourceOptions) {
    this.#store = store;
    this.#o = options;
  }

  async claim(q: ClaimQuery): Promise<ClaimedRequest[]> {
    const held = this.#held.get(q.batchId) ?? new Map<number, HeldRange>();
    this.#held.set(q.batchId, held);
    const byPrefix = q.prefixKey !== undefined;
    let after = byPrefix ? -1 : (this.#readFrom.get(q.batchId) ?? -1);
    let wrapped = after === -1;
    for (;;) {
      const read = await readClaimable(this.#store, {
        batchId: q.batchId,
        afterLine: after,
        limit: q.limit,
        owner: this.#o.owner,
        held,
        prefixKey: q.prefixKey,
        nowMs: q.nowMs,
      });
      after = read.next;
      if (!byPrefix) this.#readFrom.set(q.batchId, after);
      if (read.rangeId !== undefined) {
        const range: HeldRange = { id: read.rangeId, outstanding: read.rows.length };
        for (const r of read.rows) held.set(r.line, range);
        return read.rows;
      }
      if (after === -1) {
        if (wrapped) return [];
        wrapped = true;
      }
    }
  }

  committed(rows: readonly RowKey[]): void {
    this.#unhold(rows);
  }

  /** Nothing to write: the rows are still pending and the claim counted no attempt. */
  async release(rows: readonly RowKey[]): Promise<void> {
    this.#unhold(rows);
  }

  forgetBatch(batchId: string): void {
    const ranges = new Set<string>();
    for (const r of this.#held.get(batchId)?.values() ?? []) ranges.add(r.id);
    this.#held.delete(batchId);
    this.#readFrom.delete(batchId);
    this.#close([...ranges]);
  }

  /** Counts an attempt for the lines every other process's journal entries held, then drops them. */
  recover(): Promise<number> {
    return recoverClaimRanges(this.#store, this.#o.owner);
  }

  /** No leases to keep: held lines stay held until their outcome. */
  async upkeep(): Promise<number> {
    return 0;
  }

  drain(): Promise<void> {
    return this.#closing;
  }

  #unhold(rows: readonly RowKey[]): void {
    if (this.#held.size === 0) return;
    const done: string[] = [];
    for (const o of rows) {
      const lines = this.#held.get(o.batchId);
      const range = lines?.get(o.line);
      if (range === undefined) continue;
      lines?.delete(o.line);
      if (--range.outstanding === 0) done.push(range.id);
    }
    this.#close(done);
  }

  #close(rangeIds: string[]): void {
    if (rangeIds.length === 0) return;
    this.#closing = this.#closing.then(() =>
      closeClaimRanges(this.#store, rangeIds).catch((err: unknown) =>
        this.#o.onError?.("closing claim journal entries failed", err),
      ),
    );
  }
}
