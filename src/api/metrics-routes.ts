/**
 * `GET /metrics`: queue gauges in the Prometheus text format, read from the shared store, so any
 * API replica reports the whole deployment's queue. `sluice_backlog_requests` (pending + running) is
 * what the worker autoscaler follows (deploy/k8s/worker-hpa.yaml): a worker leases a window of rows
 * ahead of its calls, so pending alone can read 0 while most of a batch is still to run.
 * Aggregates only (no tenant or batch ids), yet it describes every tenant's load: it needs an admin
 * key unless the operator opts out (`SLUICE_METRICS_AUTH=none`, for a scraper on an internal network).
 */
import type { FastifyInstance } from "fastify";
import { BATCH_STATUSES } from "../batch/lifecycle.js";
import type { MetricsAuth } from "../config.js";
import type { AppContext } from "../context.js";
import { collectQueueMetrics, type QueueMetrics } from "../store/queue-metrics.js";
import { access } from "./auth.js";

export function renderPrometheus(m: QueueMetrics): string {
  const lines = [
    "# HELP sluice_pending_requests Requests waiting for a worker, across all batches.",
    "# TYPE sluice_pending_requests gauge",
    `sluice_pending_requests ${m.pendingRequests}`,
    "# HELP sluice_running_requests Requests claimed by a worker under a lease.",
    "# TYPE sluice_running_requests gauge",
    `sluice_running_requests ${m.runningRequests}`,
    "# HELP sluice_backlog_requests Requests not finished yet: pending plus running, across all batches.",
    "# TYPE sluice_backlog_requests gauge",
    `sluice_backlog_requests ${m.pendingRequests + m.runningRequests}`,
    "# HELP sluice_batches Batches by status.",
    "# TYPE sluice_batches gauge",
    ...BATCH_STATUSES.map((s) => `sluice_batches{status="${s}"} ${m.batches[s]}`),
  ];
  return `${lines.join("\n")}\n`;
}

/** The `/metrics` route, behind an admin key (`"admin"`) or open to any scraper (`"none"`). */
export const metricsRoutes = (auth: MetricsAuth) => (app: FastifyInstance, ctx: AppContext) => {
  app.get("/metrics", access(auth === "none" ? "public" : "admin"), async (_request, reply) => {
    const text = renderPrometheus(await collectQueueMetrics(ctx.store));
    return reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8").send(text);
  });
};
