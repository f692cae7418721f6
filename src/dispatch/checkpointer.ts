/**
 * Group commit: outcomes queue up and are written together, many rows per transaction, at most
 * `maxDelayMs` after the first one arrived (or as soon as `maxRows` are waiting). One flush runs at
 * a time; `flush()` drains everything (used on shutdown).
 *
 * A group whose transaction fails (deadlock, lost connection) is put back and retried with
 * backoff: nothing of it was written, and rewriting is safe because every write is fenced (the
 * claim source's fence). Dropping it would strand its rows, since this worker keeps holding them.
 */
import type { Fence } from "../store/claims/claim-source.js";
import { type BatchProgress, checkpoint, type Outcome } from "../store/requests/checkpoint.js";
import type { Store } from "../store/store.js";

export interface CheckpointerOptions {
  maxRows: number;
  maxDelayMs: number;
}

export const DEFAULT_CHECKPOINTER: CheckpointerOptions = { maxRows: 512, maxDelayMs: 25 };

const RETRY_BASE_MS = 50;
const RETRY_MAX_MS = 5_000;
/** Failed attempts in a row after which `flush()` (shutdown) gives up; the leases then lapse. */
const FLUSH_MAX_FAILURES = 3;

export class Checkpointer {
  readonly #store: Store;
  readonly #fence: Fence;
  readonly #o: CheckpointerOptions;
  #queue: Outcome[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Consecutive failed transactions (0 after a success), and all of them. */
  #failures = 0;
  #failedTotal = 0;
  /** Called after each committed group with the counters of the batches it moved, and the group. */
  onCommitted: ((progress: BatchProgress[], written: number, group: readonly Outcome[]) => void) | undefined;
  onError: ((err: unknown) => void) | undefined;

  constructor(store: Store, fence: Fence, options: Partial<CheckpointerOptions> = {}) {
    this.#store = store;
    this.#fence = fence;
    this.#o = { ...DEFAULT_CHECKPOINTER, ...options };
  }

  get pending(): number {
    return this.#queue.length;
  }

  add(outcome: Outcome): void {
    this.#queue.push(outcome);
    // A full group goes at once, unless a failed one is backing off.
    if (this.#queue.length >= this.#o.maxRows && this.#failures === 0) this.#kick();
    else this.#timer ??= setTimeout(() => this.#kick(), this.#o.maxDelayMs);
  }

  #kick(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#running !== undefined) return;
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
      if (this.#queue.length === 0) return;
      const delay = this.#failures === 0 ? 0 : Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (this.#failures - 1));
      this.#timer ??= setTimeout(() => this.#kick(), delay);
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const group = this.#queue.splice(0, this.#o.maxRows);
      try {
        const { written, progress } = await checkpoint(this.#store, this.#fence, group);
        this.#failures = 0;
        this.onCommitted?.(progress, written, group);
      } catch (err) {
        this.#failures++;
        this.#failedTotal++;
        this.#queue.unshift(...group);
        this.onError?.(err);
        return;
      }
    }
  }

  /**
   * Writes everything queued so far; resolves when it is committed, or after a few failed
   * attempts (shutdown must end: the rows' leases then lapse and other workers redo them).
   */
  async flush(): Promise<void> {
    const failedBefore = this.#failedTotal;
    while (this.#queue.length > 0 || this.#running !== undefined) {
      if (this.#failedTotal - failedBefore >= FLUSH_MAX_FAILURES) return;
      this.#kick();
      if (this.#running !== undefined) await this.#running;
    }
  }
}
