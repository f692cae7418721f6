/**
 * One typed event map for everything that watches Sluice from outside: CLI progress bars, SSE,
 * metrics, webhooks. Listeners run synchronously after the state change is committed; a listener
 * that throws is logged and ignored, so it can never crash a worker.
 */
import type { BatchStatus } from "./batch/lifecycle.js";

export interface SluiceEventMap {
  "batch.status": { batchId: string; tenantId: string; status: BatchStatus; at: number };
  "batch.progress": { batchId: string; tenantId: string; completed: number; failed: number };
  "backend.limit": { backend: string; limit: number; inFlight: number; reason: string };
  /** A replica's circuit breaker changed (flow/circuit-breaker.ts); `shared`: another worker said so. */
  "backend.health": { backend: string; state: "closed" | "open" | "half-open"; cause: string; shared: boolean };
}

export type SluiceEventName = keyof SluiceEventMap;
type Listener<K extends SluiceEventName> = (event: SluiceEventMap[K]) => void;

export class EventBus {
  readonly #listeners = new Map<SluiceEventName, Set<Listener<never>>>();
  readonly #onListenerError: (err: unknown) => void;

  constructor(onListenerError: (err: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  on<K extends SluiceEventName>(name: K, listener: Listener<K>): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(name, set);
    }
    set.add(listener as Listener<never>);
    return () => set.delete(listener as Listener<never>);
  }

  emit<K extends SluiceEventName>(name: K, event: SluiceEventMap[K]): void {
    const set = this.#listeners.get(name);
    if (set === undefined) return;
    for (const listener of set) {
      try {
        (listener as Listener<K>)(event);
      } catch (err) {
        this.#onListenerError(err);
      }
    }
  }
}
