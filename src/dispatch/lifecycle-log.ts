/**
 * The batch lifecycle's lines in the operational log, at info. Created and cancelling are logged
 * by src/batch/batch-service.ts, progress by progress-log.ts; these are the worker's: validated,
 * started, and the end (completed, expired, cancelled or failed) with counts, duration and rate.
 */
import type { BatchStatus } from "../batch/lifecycle.js";
import type { Logger } from "../logger.js";
import type { BatchRow } from "../store/batches.js";
import { nowSeconds } from "../store/tenants.js";

type Batch = Pick<BatchRow, "id" | "tenant_id">;

/** validating → in_progress: the input was read and every line is queued. */
export function logBatchStarted(
  logger: Logger,
  batch: Batch & Pick<BatchRow, "expires_at">,
  validated: { lines: number; model: string | null; durationMs: number },
): void {
  const ids = { batchId: batch.id, tenantId: batch.tenant_id };
  logger.info("batch validated", {
    ...ids,
    lines: validated.lines,
    model: validated.model,
    durationMs: validated.durationMs,
  });
  logger.info("batch started", {
    ...ids,
    status: "in_progress",
    total: validated.lines,
    expiresAt: new Date(Number(batch.expires_at) * 1000).toISOString(),
  });
}

/** validating → failed: the input was refused (the batch's `errors` says why, line by line). */
export function logValidationFailed(
  logger: Logger,
  batch: Batch,
  failure: { errorCount: number; firstCode: string | undefined; durationMs: number },
): void {
  logger.info("batch failed", {
    batchId: batch.id,
    tenantId: batch.tenant_id,
    status: "failed",
    stage: "validating",
    errorCount: failure.errorCount,
    firstError: failure.firstCode,
    durationMs: failure.durationMs,
  });
}

/**
 * The batch reached its end status. `unfinished` rows were ended by the window or the cancel
 * (counted as failed, and named by status); the rate is over the time the batch was in_progress.
 */
export function logBatchEnded(
  logger: Logger,
  batch: Batch & Pick<BatchRow, "total" | "completed" | "failed" | "created_at" | "in_progress_at">,
  status: BatchStatus,
  unfinished = 0,
  now = nowSeconds(),
): void {
  const completed = Number(batch.completed);
  const ranFailed = Number(batch.failed);
  const runSeconds = batch.in_progress_at === null ? 0 : now - Number(batch.in_progress_at);
  logger.info(`batch ${status}`, {
    batchId: batch.id,
    tenantId: batch.tenant_id,
    status,
    total: Number(batch.total),
    completed,
    failed: ranFailed + unfinished,
    ...(unfinished > 0 ? { [status === "expired" ? "expired" : "cancelled"]: unfinished } : {}),
    durationSeconds: now - Number(batch.created_at),
    requestsPerSecond: runSeconds > 0 ? Math.round(((completed + ranFailed) / runSeconds) * 10) / 10 : null,
  });
}
