/**
 * DELETE /v1/batches/{id} (an extension, like Anthropic's): an ended batch, its request rows,
 * its output and error files and its data keys (rows and outputs; metadata) are deleted.
 * Destroying the data key crypto-shreds whatever copy of its rows or outputs remains (backups,
 * WAL, object versions).
 * The input file is a separate object and stays until deleted or expired.
 */
import type { AppContext } from "../context.js";
import { metadataKeyOwner } from "../crypto/object-fields.js";
import { conflict, notFound } from "../errors.js";
import { deleteEndedBatch, getBatch } from "../store/batches.js";
import { deleteFileRow, getFile } from "../store/files.js";
import { TERMINAL_BATCH_STATUSES } from "./lifecycle.js";

export async function deleteBatch(ctx: AppContext, tenantId: string, id: string): Promise<void> {
  const batch = await getBatch(ctx.store, tenantId, id);
  if (batch === undefined) throw notFound("batch", id);
  if (!(await deleteEndedBatch(ctx.store, tenantId, id, TERMINAL_BATCH_STATUSES))) {
    const now = await getBatch(ctx.store, tenantId, id);
    if (now === undefined) throw notFound("batch", id);
    throw conflict(
      `Batch '${id}' is '${now.status}'; only ended batches can be deleted (cancel it first).`,
      "batch_not_ended",
    );
  }
  await ctx.store.dataKeys.destroy(id, metadataKeyOwner(id));
  // File rows name the blobs finalize wrote (attempt-specific keys); that attempt's keys are theirs.
  const blobKeys = new Set<string>();
  for (const fileId of [batch.output_file_id, batch.error_file_id]) {
    if (fileId === null) continue;
    const file = await getFile(ctx.store, tenantId, fileId);
    if (file === undefined) continue;
    blobKeys.add(file.blob_key);
    await deleteFileRow(ctx.store, tenantId, fileId);
  }
  for (const key of blobKeys) await ctx.blobs.delete(key);
}
