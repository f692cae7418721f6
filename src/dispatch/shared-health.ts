/**
 * Circuit-breaker state shared by the workers of one store (PostgreSQL: many workers, each with
 * its own breakers). A worker whose breaker opens on its own calls records "down since, why" in
 * `backend_health`; one whose breaker closes after a real answer records "up". Every SYNC_EVERY_MS
 * each worker reads the rows and follows what another worker wrote since it last looked: down →
 * its breaker opens at once (no calls spent finding out), and a replica it creates later starts
 * open; up → it probes now (and resumes from slow start when its own probe answers). Replicas are
 * keyed by a hash of their URL (URLs may carry credentials).
 */
import { createHash } from "node:crypto";
import type { HealthChange, Replica, Router } from "../backends/router.js";
import { type BackendHealthRow, readBackendHealth, writeBackendHealth } from "../store/backend-health.js";
import type { Store } from "../store/store.js";

export const SYNC_EVERY_MS = 1_000;

export const healthKey = (backendName: string) =>
  `h1:${createHash("sha256").update(backendName).digest("hex").slice(0, 32)}`;

export class SharedHealth {
  readonly #store: Store;
  readonly #router: Router;
  readonly #owner: string;
  /** Per backend key: the newest `updated_ms` seen, so a row is followed once. */
  readonly #seen = new Map<string, number>();
  /** Backends another worker last reported down: a replica created later starts open. */
  readonly #down = new Map<string, BackendHealthRow>();
  #lastSyncMs = 0;

  constructor(store: Store, router: Router, owner: string) {
    this.#store = store;
    this.#router = router;
    this.#owner = owner;
  }

  /** A replica was just created: if another worker reported it down, it starts open. */
  created(replica: Replica): void {
    const row = this.#down.get(healthKey(replica.backend.name));
    if (row?.down_since_ms != null) replica.breaker.forceOpen(row.cause, row.down_since_ms);
  }

  /** This worker's breaker changed on its own calls or probe: tell the others (open and closed only). */
  async record(change: HealthChange, nowMs = Date.now()): Promise<void> {
    if (change.shared || change.state === "half-open") return;
    const key = healthKey(change.backend);
    this.#seen.set(key, nowMs);
    await writeBackendHealth(this.#store, {
      backend: key,
      down_since_ms: change.state === "open" ? (change.downSinceMs ?? nowMs) : null,
      cause: change.cause,
      updated_ms: nowMs,
      updated_by: this.#owner,
    });
  }

  /** At most every SYNC_EVERY_MS: follows what other workers recorded since the last look. */
  async sync(nowMs = Date.now()): Promise<void> {
    if (nowMs - this.#lastSyncMs < SYNC_EVERY_MS) return;
    this.#lastSyncMs = nowMs;
    const byKey = new Map<string, Replica[]>();
    for (const r of this.#router.replicas()) {
      const key = healthKey(r.backend.name);
      byKey.set(key, [...(byKey.get(key) ?? []), r]);
    }
    for (const row of await readBackendHealth(this.#store)) {
      if (row.updated_ms <= (this.#seen.get(row.backend) ?? 0)) continue;
      this.#seen.set(row.backend, row.updated_ms);
      if (row.updated_by === this.#owner) continue;
      if (row.down_since_ms === null) this.#down.delete(row.backend);
      else this.#down.set(row.backend, row);
      for (const r of byKey.get(row.backend) ?? []) {
        if (row.down_since_ms !== null) r.breaker.forceOpen(row.cause, row.down_since_ms);
        else r.breaker.probeSoon();
      }
    }
  }
}
