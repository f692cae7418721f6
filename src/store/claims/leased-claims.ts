/**
 * The leased claim source (PostgreSQL, many workers): rows move pending → running under this
 * worker's lease when claimed (the attempt counts then), the lease is renewed every few ticks, and
 * any worker returns expired leases to pending. Nothing is held in memory: a crashed worker's rows
 * come back when its leases expire.
 */
import type { Store } from "../store.js";
import {
  type ClaimedRequest,
  type ClaimQuery,
  type ClaimSource,
  type ClaimSourceOptions,
  type Fence,
  leaseFence,
  type RowKey,
} from "./claim-source.js";
import { claimRequests } from "./leased-claim.js";
import { recoverExpiredLeases, releaseLeased, renewLeases } from "./leases.js";

export class LeasedClaims implements ClaimSource {
  readonly fence: Fence;
  readonly #store: Store;
  readonly #o: ClaimSourceOptions;
  #lastRenewMs = 0;

  constructor(store: Store, options: ClaimSourceOptions) {
    this.#store = store;
    this.#o = options;
    this.fence = leaseFence(options.owner);
  }

  claim(q: ClaimQuery): Promise<ClaimedRequest[]> {
    return claimRequests(this.#store, {
      batchId: q.batchId,
      owner: this.#o.owner,
      leaseMs: this.#o.leaseMs,
      limit: q.limit,
      prefixKey: q.prefixKey,
      nowMs: q.nowMs,
    });
  }

  committed(_rows: readonly RowKey[]): void {
    // The verdict cleared the lease in the same statement: nothing is held here.
  }

  async release(rows: readonly RowKey[]): Promise<void> {
    await releaseLeased(this.#store, this.#o.owner, rows);
  }

  forgetBatch(_batchId: string): void {
    // The batch job made the rows terminal; their leases went with them.
  }

  recover(nowMs = Date.now()): Promise<number> {
    return recoverExpiredLeases(this.#store, nowMs);
  }

  /** Renews this worker's leases every quarter lease, and returns anyone's expired leases. */
  async upkeep(nowMs = Date.now()): Promise<number> {
    const returned = await recoverExpiredLeases(this.#store, nowMs);
    if (nowMs - this.#lastRenewMs > this.#o.leaseMs / 4) {
      this.#lastRenewMs = nowMs;
      await renewLeases(this.#store, this.#o.owner, this.#o.leaseMs, nowMs);
    }
    return returned;
  }

  async drain(): Promise<void> {}
}
