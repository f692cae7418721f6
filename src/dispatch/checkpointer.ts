/**
 * Group commit: outcomes queue up and are written together, many rows per transaction, at most
 * `maxDelayMs` after the first one arrived (or as soon as `maxRows` are waiting). One flush runs at
 * a time; `flush()` drains everything (used on shutdown).
 */
import { checkpoint, type Outcome } from "../store/requests/checkpoint.js";
import type { Store } from "../store/store.js";

export interface CheckpointerOptions {
  maxRows: number;
  maxDelayMs: number;
}

export const DEFAULT_CHECKPOINTER: CheckpointerOptions = { maxRows: 512, maxDelayMs: 25 };

export class Checkpointer {
  readonly #store: Store;
  readonly #owner: string;
  readonly #o: CheckpointerOptions;
  #queue: Outcome[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  /** Called after each committed group with the batches it touched. */
  onCommitted: ((batchIds: Set<string>, written: number) => void) | undefined;
  onError: ((err: unknown) => void) | undefined;

  constructor(store: Store, owner: string, options: Partial<CheckpointerOptions> = {}) {
    this.#store = store;
    this.#owner = owner;
    this.#o = { ...DEFAULT_CHECKPOINTER, ...options };
  }

  get pending(): number {
    return this.#queue.length;
  }

  add(outcome: Outcome): void {
    this.#queue.push(outcome);
    if (this.#queue.length >= this.#o.maxRows) this.#kick();
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
      if (this.#queue.length > 0) this.#timer ??= setTimeout(() => this.#kick(), 0);
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const group = this.#queue.splice(0, this.#o.maxRows);
      try {
        const written = await checkpoint(this.#store, this.#owner, group);
        this.onCommitted?.(new Set(group.map((o) => o.batchId)), written);
      } catch (err) {
        // The rows stay leased; when the lease expires another attempt recomputes them.
        this.onError?.(err);
      }
    }
  }

  /** Writes everything queued so far; resolves when it is committed. */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#running !== undefined) {
      this.#kick();
      if (this.#running !== undefined) await this.#running;
    }
  }
}
