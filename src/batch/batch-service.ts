/** Creating and cancelling batches: the checks that must pass before a batch exists. */

import { isInputUrl } from "../blob/input-source.js";
import { InputUrlError, inputUrlAllowed } from "../blob/input-url.js";
import type { AppContext } from "../context.js";
import { metadataKeyOwner, sealObjectField } from "../crypto/object-fields.js";
import { conflict, invalidRequest, notFound } from "../errors.js";
import { newBatchId, newFileId } from "../ids.js";
import { type BatchRow, getBatch, newBatchRow, transitionBatch } from "../store/batches.js";
import { getFile, insertFile } from "../store/files.js";
import type { DedupMode, ReuseMode } from "../store/schema.js";
import { getTenant, nowSeconds } from "../store/tenants.js";
import { checkInputFile, fileTokenEstimate, insertBatchWithinQuota } from "../tenancy/batch-quota.js";
import { tenantLimits } from "../tenancy/tenant-limits.js";
import { parseCompletionWindow } from "./endpoints.js";
import { CANCELLABLE } from "./lifecycle.js";

export interface CreateBatchInput {
  tenantId: string;
  inputFileId: string;
  endpoint: string;
  completionWindow: string;
  metadata?: Record<string, string> | null | undefined;
  outputExpiresSeconds?: number | null | undefined;
  /** Which finished lines of the tenant a line may take instead of a call (default custom_id+body). */
  reuse?: ReuseMode | undefined;
  /** Which identical lines of the batch are sent once (default deterministic). */
  dedup?: DedupMode | undefined;
}

export const REUSE_MODES = ["custom_id+body", "body", "off"] as const satisfies readonly ReuseMode[];
export const DEDUP_MODES = ["deterministic", "all", "off"] as const satisfies readonly DedupMode[];

export async function createBatch(ctx: AppContext, input: CreateBatchInput): Promise<BatchRow> {
  const windowSeconds = parseCompletionWindow(input.completionWindow);
  const file = isInputUrl(input.inputFileId)
    ? await registerInputUrl(ctx, input.tenantId, input.inputFileId)
    : await getFile(ctx.store, input.tenantId, input.inputFileId);
  if (file === undefined) {
    throw invalidRequest(`No file found with id '${input.inputFileId}'.`, "input_file_id", "invalid_input_file");
  }
  if (file.purpose !== "batch") {
    throw invalidRequest(
      `File '${file.id}' has purpose '${file.purpose}'; batch inputs need purpose 'batch'.`,
      "input_file_id",
      "invalid_input_file",
    );
  }
  const limits = await tenantLimits(ctx.store, input.tenantId, ctx.limits);
  checkInputFile(file, limits);
  const created = nowSeconds();
  const id = newBatchId();
  const metadata = input.metadata ? JSON.stringify(input.metadata) : null;
  const row = newBatchRow(
    {
      id,
      tenant_id: input.tenantId,
      endpoint: input.endpoint,
      input_file_id: file.id,
      completion_window: input.completionWindow,
      created_at: created,
      expires_at: created + windowSeconds,
    },
    {
      // User data: sealed under a key of its own (object-fields.ts: it outlives the batch's key).
      metadata: await sealObjectField(ctx.store, metadataKeyOwner(id), "metadata", metadata),
      output_expires_seconds: input.outputExpiresSeconds ?? null,
      token_estimate: fileTokenEstimate(file),
      reuse_mode: input.reuse ?? "custom_id+body",
      dedup_mode: input.dedup ?? "deterministic",
    },
  );
  try {
    await insertBatchWithinQuota(ctx.store, row, limits);
  } catch (err) {
    if (metadata !== null) await ctx.store.dataKeys.destroy(metadataKeyOwner(id)).catch(() => {});
    throw err;
  }
  ctx.logger.info("batch created", {
    batchId: row.id,
    tenantId: row.tenant_id,
    endpoint: row.endpoint,
    completionWindow: row.completion_window,
    inputFileId: file.id,
    expiresAt: new Date((created + windowSeconds) * 1000).toISOString(),
  });
  ctx.events.emit("batch.status", { batchId: row.id, tenantId: row.tenant_id, status: "validating", at: created });
  return row;
}

/**
 * An `s3://bucket/key` input (extension): allowed only under SLUICE_S3_INPUT_PREFIXES. It becomes
 * a file row pointing at the object, which ingest streams straight from the bucket.
 */
async function registerInputUrl(ctx: AppContext, tenantId: string, url: string) {
  const tenantName = (await getTenant(ctx.store, tenantId))?.name ?? tenantId;
  let allowed: boolean;
  try {
    allowed = inputUrlAllowed(url, ctx.limits.inputUrlPrefixes, tenantName);
  } catch (err) {
    if (!(err instanceof InputUrlError)) throw err;
    // Why, not the URL itself: it is the caller's own text and may be long.
    throw invalidRequest(
      `'input_file_id' is not a valid s3://bucket/key URL (${err.message}).`,
      "input_file_id",
      "invalid_input_file",
    );
  }
  if (!allowed) {
    throw invalidRequest(
      "This server does not accept input files by s3:// URL from that location (see SLUICE_S3_INPUT_PREFIXES).",
      "input_file_id",
      "invalid_input_file",
    );
  }
  const id = newFileId();
  const row = {
    id,
    tenant_id: tenantId,
    purpose: "batch",
    filename: await sealObjectField(ctx.store, id, "filename", url.split("/").pop() ?? "input.jsonl"),
    bytes: 0,
    created_at: nowSeconds(),
    expires_at: null,
    status: "processed",
    blob_key: url,
    // Unknown until ingest reads it: per-tenant line and token limits apply during validation.
    line_count: null,
    token_estimate: null,
  };
  await insertFile(ctx.store, row);
  return row;
}

/** validating|in_progress → cancelling. Workers then abort in-flight calls and finalize. */
export async function cancelBatch(ctx: AppContext, tenantId: string, id: string): Promise<BatchRow> {
  const batch = await getBatch(ctx.store, tenantId, id);
  if (batch === undefined) throw notFound("batch", id);
  if (batch.status === "cancelling" || batch.status === "cancelled") return batch;
  const at = nowSeconds();
  const moved = await transitionBatch(ctx.store, id, CANCELLABLE, "cancelling", { cancelling_at: at });
  if (!moved) {
    const now = await getBatch(ctx.store, tenantId, id);
    if (now?.status === "cancelling") return now;
    throw conflict(
      `Cannot cancel batch '${id}': its status is '${now?.status ?? batch.status}'.`,
      "batch_not_cancellable",
    );
  }
  ctx.logger.info("batch cancelling", { batchId: id, tenantId, from: batch.status });
  ctx.events.emit("batch.status", { batchId: id, tenantId, status: "cancelling", at });
  const updated = await getBatch(ctx.store, tenantId, id);
  if (updated === undefined) throw notFound("batch", id);
  return updated;
}
