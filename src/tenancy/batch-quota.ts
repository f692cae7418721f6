/**
 * Admission of a new batch against its tenant's limits, all decided when the batch is CREATED
 * (a clear 4xx then, never an asynchronous failure later):
 * - lines of the input file (counted at upload) ≤ maxBatchLines            → 400 too_many_tasks
 * - its estimated tokens alone ≤ maxEnqueuedTokens                          → 400 token_limit_exceeded
 * - unfinished batches < maxConcurrentBatches                              → 429 concurrent_batch_limit_exceeded
 * - estimated tokens of unfinished batches + this one ≤ maxEnqueuedTokens  → 429 token_limit_exceeded
 * The last two are checked and the batch inserted in one transaction that first writes the
 * tenant's row (src/store/quota.ts): that serializes concurrent creations for one tenant on SQLite
 * and PostgreSQL alike.
 */
import type { NewBatchRow } from "../store/batches.js";
import { insertBatchIfAdmitted } from "../store/quota.js";
import type { Store } from "../store/store.js";
import { LimitError } from "./limit-error.js";
import type { TenantLimits } from "./tenant-limits.js";

const noRetry = { "x-should-retry": "false" };

/** Upload statistics of an input file; unknown (absent or null) for inputs given by URL. */
export interface InputFileStats {
  id: string;
  line_count?: number | null;
  token_estimate?: number | null;
}

export const fileTokenEstimate = (file: InputFileStats) => Number(file.token_estimate ?? 0);

/** Checks what the input file alone must satisfy. */
export function checkInputFile(file: InputFileStats, limits: TenantLimits): void {
  const lines = file.line_count == null ? null : Number(file.line_count);
  if (lines !== null && lines > limits.maxBatchLines) {
    throw new LimitError(
      "too_many_tasks",
      `File '${file.id}' has ${lines} requests; the limit per batch is ${limits.maxBatchLines}. Split the file.`,
      { status: 400, param: "input_file_id" },
    );
  }
  const tokens = fileTokenEstimate(file);
  if (tokens > limits.maxEnqueuedTokens) {
    throw new LimitError(
      "token_limit_exceeded",
      `File '${file.id}' holds about ${tokens} input tokens; the enqueued-token limit is ${limits.maxEnqueuedTokens}. Split the file.`,
      { status: 400, param: "input_file_id" },
    );
  }
}

/** Inserts the batch if the tenant's unfinished batches leave room for it. */
export async function insertBatchWithinQuota(store: Store, row: NewBatchRow, limits: TenantLimits): Promise<void> {
  const tokens = row.token_estimate ?? 0;
  await insertBatchIfAdmitted(store, row, ({ batches: n, tokens: enqueued }) => {
    if (n >= limits.maxConcurrentBatches) {
      throw new LimitError(
        "concurrent_batch_limit_exceeded",
        `${n} batches are unfinished; the limit is ${limits.maxConcurrentBatches}. Wait for one to end or cancel one.`,
        { status: 429, headers: noRetry },
      );
    }
    if (enqueued + tokens > limits.maxEnqueuedTokens) {
      throw new LimitError(
        "token_limit_exceeded",
        `Unfinished batches hold about ${enqueued} input tokens; this one adds ${tokens} and the limit is ${limits.maxEnqueuedTokens}. Wait for batches to finish.`,
        { status: 429, headers: noRetry },
      );
    }
  });
}
