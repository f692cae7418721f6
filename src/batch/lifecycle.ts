/**
 * Batch state machine (OpenAI's statuses):
 *
 *   validating ─┬─> failed                      (any invalid line; nothing processed)
 *               └─> in_progress ─┬─> finalizing ─> completed
 *                                ├─> cancelling ─> cancelled   (finished results delivered)
 *                                └─> (window passed) finalizing ─> expired
 *   validating ──> cancelling ─> cancelled
 *
 * `finalizing` is also passed through by expiry; the final status is decided by `endState`.
 */
import type { BatchStatus } from "../store/batch-status.js";

export { BATCH_STATUSES, type BatchStatus } from "../store/batch-status.js";

export const TERMINAL_BATCH_STATUSES: readonly BatchStatus[] = ["failed", "completed", "expired", "cancelled"];

export function isTerminal(status: string): boolean {
  return (TERMINAL_BATCH_STATUSES as readonly string[]).includes(status);
}

/** Statuses from which a cancel request is accepted. */
export const CANCELLABLE: readonly BatchStatus[] = ["validating", "in_progress"];
