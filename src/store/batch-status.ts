/**
 * A batch's statuses (OpenAI's), owned by the store that keeps them; the state machine that moves
 * between them is the domain's (src/batch/lifecycle.ts, which re-exports these).
 */
export const BATCH_STATUSES = [
  "validating",
  "failed",
  "in_progress",
  "finalizing",
  "completed",
  "expired",
  "cancelling",
  "cancelled",
] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];
