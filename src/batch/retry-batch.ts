/**
 * POST /v1/batches/{id}/retry (an extension): a new batch over the same input file, endpoint,
 * completion window, metadata, output retention and dedup mode as an ended batch, with reuse
 * `custom_id+body`, so validation's reuse pass (store/requests/reuse.ts) answers the lines that
 * succeeded from it without a call and only the failed, expired and cancelled lines run again.
 * The new batch's output file is complete, in input order. Only an ended batch can be retried: a
 * batch still running would have lines that neither batch reuses nor skips.
 */
import type { AppContext } from "../context.js";
import { metadataKeyOwner, openObjectField } from "../crypto/object-fields.js";
import { conflict, notFound } from "../errors.js";
import { type BatchRow, getBatch } from "../store/batches.js";
import { createBatch } from "./batch-service.js";
import { isTerminal } from "./lifecycle.js";

/** Creates the retry batch of ended batch `id` of `tenantId` (see the header). */
export async function retryBatch(ctx: AppContext, tenantId: string, id: string): Promise<BatchRow> {
  const batch = await getBatch(ctx.store, tenantId, id);
  if (batch === undefined) throw notFound("batch", id);
  if (!isTerminal(batch.status)) {
    throw conflict(
      `Batch '${id}' is '${batch.status}'; only an ended batch can be retried (wait for it to end, or cancel it first).`,
      "batch_not_ended",
    );
  }
  const metadata = await openObjectField(ctx.store, metadataKeyOwner(id), "metadata", batch.metadata);
  const retry = await createBatch(ctx, {
    tenantId,
    inputFileId: batch.input_file_id,
    endpoint: batch.endpoint,
    completionWindow: batch.completion_window,
    metadata: metadata === null ? null : (JSON.parse(metadata) as Record<string, string>),
    outputExpiresSeconds: batch.output_expires_seconds,
    reuse: "custom_id+body",
    dedup: batch.dedup_mode,
  });
  ctx.logger.info("batch retry", { batchId: retry.id, tenantId, retries: id, from: batch.status });
  return retry;
}
