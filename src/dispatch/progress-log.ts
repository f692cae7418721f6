/**
 * A "batch progress" line at info, per running batch, at most every `intervalMs` (30 s): the
 * batch's counters from the checkpoint's commits and the requests finished per second since the
 * last line. One line per interval whatever the request rate; a batch whose rows are all done,
 * or that stops committing for a few intervals, is forgotten.
 */
import type { Logger } from "../logger.js";

export const PROGRESS_LOG_INTERVAL_MS = 30_000;

/** A batch's counters after a commit (store/requests/checkpoint.ts `BatchProgress`). */
export interface BatchCounters {
  batchId: string;
  tenantId: string;
  completed: number;
  failed: number;
  total: number;
}

/** Intervals without a commit after which a batch is dropped from the table. */
const FORGET_AFTER_INTERVALS = 4;

export class ProgressLog {
  readonly #logger: Logger;
  readonly #intervalMs: number;
  /** Per batch: when the last line was written (or the batch first seen), and its count then. */
  readonly #last = new Map<string, { atMs: number; done: number; seenMs: number }>();

  constructor(logger: Logger, intervalMs = PROGRESS_LOG_INTERVAL_MS) {
    this.#logger = logger;
    this.#intervalMs = intervalMs;
  }

  /** Called with each commit's counters; logs the batches whose interval has passed. */
  observe(progress: readonly BatchCounters[], nowMs = Date.now()): void {
    for (const b of progress) {
      const done = b.completed + b.failed;
      const last = this.#last.get(b.batchId);
      if (done >= b.total) {
        this.#last.delete(b.batchId); // its end line follows
        continue;
      }
      if (last === undefined) {
        this.#last.set(b.batchId, { atMs: nowMs, done, seenMs: nowMs });
        continue;
      }
      last.seenMs = nowMs;
      if (nowMs - last.atMs < this.#intervalMs) continue;
      const seconds = (nowMs - last.atMs) / 1000;
      this.#logger.info("batch progress", {
        batchId: b.batchId,
        tenantId: b.tenantId,
        completed: b.completed,
        failed: b.failed,
        total: b.total,
        requestsPerSecond: Math.round(((done - last.done) / seconds) * 10) / 10,
      });
      last.atMs = nowMs;
      last.done = done;
    }
    for (const [id, last] of this.#last) {
      if (nowMs - last.seenMs > FORGET_AFTER_INTERVALS * this.#intervalMs) this.#last.delete(id);
    }
  }
}
