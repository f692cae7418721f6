/**
 * A fixed set of context sequences handed out one request at a time. The dispatcher never runs
 * more calls than there are sequences (maxConcurrency), so acquire is normally immediate; the FIFO
 * queue covers callers that do not go through it. An aborted waiter leaves the queue at once.
 */

interface Waiter<T> {
  resolve(item: T): void;
  reject(reason: unknown): void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export class SequencePool<T> {
  readonly #free: T[];
  readonly #waiters: Waiter<T>[] = [];
  #closedReason: Error | null = null;
  readonly size: number;

  constructor(items: readonly T[]) {
    this.#free = [...items];
    this.size = items.length;
  }

  acquire(signal?: AbortSignal): Promise<T> {
    if (this.#closedReason !== null) return Promise.reject(this.#closedReason);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const item = this.#free.pop();
    if (item !== undefined) return Promise.resolve(item);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal?.reason);
        },
      };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  release(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter === undefined) {
      this.#free.push(item);
      return;
    }
    waiter.signal?.removeEventListener("abort", waiter.onAbort);
    waiter.resolve(item);
  }

  /** Fails every waiter and every later acquire with `reason`. */
  close(reason: Error): void {
    this.#closedReason = reason;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.signal?.removeEventListener("abort", waiter.onAbort);
      waiter.reject(reason);
    }
  }
}
