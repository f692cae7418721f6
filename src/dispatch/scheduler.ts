/**
 * The scheduler: the one place that decides what is claimed next. The dispatcher says how many
 * rows it has room for (from its backend pools' free capacity); the scheduler asks its policy
 * which batches to claim from, in what order and how many rows from each, and claims them from the
 * claim source. Policies see each batch's tenant, deadline, priority and age, and may narrow a
 * claim to a shared-prefix key, so that fair share, deadlines (EDF), priorities and prefix groups
 * plug in here without touching the dispatcher or the store.
 *
 * The first policy is round-robin over batches in input order (no batch starves behind a large
 * one); it keeps a cursor that moves past the batch that was last served.
 */
import type { ClaimedRequest, ClaimSource } from "../store/claims/claim-source.js";

/** What a policy knows about a batch that has rows to run. */
export interface SchedulableBatch {
  id: string;
  tenantId: string;
  endpoint: string;
  /** When its window ends (unix ms): the deadline. */
  deadlineMs: number;
  /** Higher runs first under priority-aware policies (0 by default). */
  priority: number;
  createdAtMs: number;
  /** The batch's one model (null when its lines name several): where its rows will be routed. */
  model: string | null;
  /**
   * What a request of this batch costs on its route, per million tokens (null: unknown, e.g. no
   * price configured): for cost-aware policies.
   */
  routeCost: number | null;
}

/** One claim to try: up to `limit` rows of a batch, optionally only those sharing a prefix key. */
export interface ClaimStep {
  batchId: string;
  limit: number;
  prefixKey?: string | undefined;
}

export interface SchedulingPolicy {
  readonly name: string;
  /**
   * The claims to try, in order, for `room` rows; the scheduler stops at the first that yields
   * rows. An empty plan means nothing should run now.
   */
  plan(batches: readonly SchedulableBatch[], room: number, nowMs: number): ClaimStep[];
  /** What a step yielded (0 = nothing due there): stateful policies learn from it. */
  claimed(step: ClaimStep, rows: readonly ClaimedRequest[]): void;
}

/** Round-robin over batches (the order they were given: oldest first), input order within each. */
export class RoundRobinPolicy implements SchedulingPolicy {
  readonly name = "round-robin";
  /** The batch served last: the next plan starts after it. */
  #served: string | undefined;

  plan(batches: readonly SchedulableBatch[], room: number): ClaimStep[] {
    if (batches.length === 0 || room <= 0) return [];
    const start = batches.findIndex((b) => b.id === this.#served) + 1;
    return batches.map((_, i) => ({
      batchId: (batches[(start + i) % batches.length] as SchedulableBatch).id,
      limit: room,
    }));
  }

  claimed(step: ClaimStep, rows: readonly ClaimedRequest[]): void {
    if (rows.length > 0) this.#served = step.batchId;
  }
}

export interface ClaimedWork {
  batch: SchedulableBatch;
  rows: ClaimedRequest[];
}

export class Scheduler {
  readonly #source: ClaimSource;
  readonly #policy: SchedulingPolicy;
  readonly #now: () => number;
  #batches: SchedulableBatch[] = [];

  constructor(source: ClaimSource, policy: SchedulingPolicy, now: () => number = Date.now) {
    this.#source = source;
    this.#policy = policy;
    this.#now = now;
  }

  get batches(): readonly SchedulableBatch[] {
    return this.#batches;
  }

  get policy(): string {
    return this.#policy.name;
  }

  /** Replaces the batches with rows to run (in_progress, oldest first). */
  setBatches(batches: SchedulableBatch[]): void {
    this.#batches = batches;
  }

  /** Stops considering a batch at once (cancel, expiry), until the next `setBatches`. */
  drop(batchId: string): void {
    this.#batches = this.#batches.filter((b) => b.id !== batchId);
  }

  /**
   * Claims up to `room` rows as the policy orders; undefined when nothing is due anywhere.
   * `eligible` leaves batches out of this claim (the dispatcher's: those whose engine is down).
   */
  async next(room: number, eligible?: (batch: SchedulableBatch) => boolean): Promise<ClaimedWork | undefined> {
    const batches = eligible === undefined ? this.#batches : this.#batches.filter(eligible);
    const nowMs = this.#now();
    const byId = new Map(batches.map((b) => [b.id, b]));
    for (const step of this.#policy.plan(batches, room, nowMs)) {
      const batch = byId.get(step.batchId);
      if (batch === undefined) continue;
      const rows = await this.#source.claim({
        batchId: step.batchId,
        limit: Math.min(step.limit, room),
        prefixKey: step.prefixKey,
        nowMs,
      });
      this.#policy.claimed(step, rows);
      if (rows.length > 0) return { batch, rows };
    }
    return undefined;
  }
}
