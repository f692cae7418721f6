/**
 * Claims: how a worker takes pending rows to run, as one interface with two implementations.
 *
 * - Leased rows (PostgreSQL, many workers; `leased-claims.ts`): a claim moves rows pending →
 *   running under a lease (owner + expiry) and counts the attempt; the worker renews its leases
 *   and returns expired ones to pending (`upkeep`); a verdict is fenced on `running` + owner.
 * - Held claims (SQLite, one process owns the store; `held-claims.ts`): a claim reads due pending
 *   rows after a cursor and holds their lines in memory, journalled in `claim_ranges`; rows stay
 *   pending until their verdict, which is fenced on `pending`; `recover` counts an attempt for
 *   what a dead process held.
 *
 * The dispatcher sees only `claim` / `committed` / `release`; the worker calls `recover` once
 * and `upkeep` every tick; the checkpoint writes under the source's `fence`. Which source a
 * store gets is decided once, by its dialect (`caps.createClaimSource`): nothing else branches
 * on the claim mode.
 */

export interface ClaimedRequest {
  tenantId: string;
  batchId: string;
  line: number;
  customId: string;
  model: string;
  body: string;
  /** The shared-prefix key derived at ingest (null when none). */
  prefixKey: string | null;
  /** Attempt number of this claim (1 for the first call). */
  attempt: number;
  /**
   * Lines of the batch merged with this one (requests/dedup.ts), which take its verdict: carried
   * into the outcome so only those checkpoints look for them. Absent or 0: none.
   */
  dupCount?: number;
}

/** A row by its key. */
export interface RowKey {
  batchId: string;
  line: number;
}

/**
 * What a claimed row looks like in the store until its verdict: the checkpoint writes a verdict
 * only onto a row that still matches (exactly-once), and counts a retry's attempt when the claim
 * did not (`countsAttemptAtClaim`).
 */
export interface Fence {
  /** The status a claimed row keeps: `running` (leased) or `pending` (held). */
  readonly status: "running" | "pending";
  /** The lease owner a claimed row carries (null: held claims take no lease). */
  readonly owner: string | null;
  /** Whether the claim itself counted the attempt (leases) or the verdict must (held). */
  readonly countsAttemptAtClaim: boolean;
}

/** The fence of rows leased by `owner`. */
export const leaseFence = (owner: string): Fence => ({ status: "running", owner, countsAttemptAtClaim: true });

/** The fence of held rows: still pending, no lease. */
export const HELD_FENCE: Fence = { status: "pending", owner: null, countsAttemptAtClaim: false };

/**
 * One claim: up to `limit` due rows of a batch, in line order. `prefixKey` narrows it to rows that
 * share a prompt prefix (for policies that group them).
 */
export interface ClaimQuery {
  batchId: string;
  limit: number;
  prefixKey?: string | undefined;
  nowMs?: number | undefined;
}

export interface ClaimSource {
  readonly fence: Fence;
  /** Takes up to `q.limit` due rows; an empty list means none is due now. */
  claim(q: ClaimQuery): Promise<ClaimedRequest[]>;
  /** These rows' outcomes are committed: stop holding them. */
  committed(rows: readonly RowKey[]): void;
  /** Hands rows back without a verdict (shutdown; never called): their attempt does not count. */
  release(rows: readonly RowKey[]): Promise<void>;
  /** A batch's rows were made terminal by a batch job (cancel, expiry): forget what is held. */
  forgetBatch(batchId: string): void;
  /** Once, before the first claim: take back what a dead process held. Returns rows recovered. */
  recover(nowMs?: number): Promise<number>;
  /** Every housekeeping tick: keep this worker's claims alive, return lapsed ones. Rows returned. */
  upkeep(nowMs?: number): Promise<number>;
  /** Resolves when the source's own writes (journal entries) are done: shutdown, after the last checkpoint. */
  drain(): Promise<void>;
}

export interface ClaimSourceOptions {
  /** This worker's id (lease owner, journal owner). */
  owner: string;
  leaseMs: number;
  onError?: ((what: string, err: unknown) => void) | undefined;
}
