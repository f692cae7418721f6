/** Queue gauges for `GET /metrics` (src/api/metrics-routes.ts), read from the shared store. */
import { BATCH_STATUSES, type BatchStatus } from "./batch-status.js";
import type { Store } from "./store.js";

export interface QueueMetrics {
  /** Rows waiting for a worker (including retries whose backoff has not elapsed). */
  pendingRequests: number;
  /** Rows claimed under a lease: in flight, buffered by a worker, or awaiting their checkpoint. */
  runningRequests: number;
  batches: Record<BatchStatus, number>;
}

const countRequests = async (store: Store, status: "pending" | "running") => {
  const row = await store.db
    .selectFrom("requests")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("status", "=", status)
    .executeTakeFirstOrThrow();
  return Number(row.n);
};

/** One count per request status so each walks its partial index (pending, running), not the table. */
export async function collectQueueMetrics(store: Store): Promise<QueueMetrics> {
  const [pendingRequests, runningRequests, batches] = await Promise.all([
    countRequests(store, "pending"),
    countRequests(store, "running"),
    store.db
      .selectFrom("batches")
      .select(["status", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy("status")
      .execute(),
  ]);
  const byStatus = Object.fromEntries(BATCH_STATUSES.map((s) => [s, 0])) as Record<BatchStatus, number>;
  for (const b of batches) if (b.status in byStatus) byStatus[b.status as BatchStatus] = Number(b.n);
  return { pendingRequests, runningRequests, batches: byStatus };
}
