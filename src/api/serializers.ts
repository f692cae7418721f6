/** Store rows → OpenAI object shapes (File, Batch, list envelopes). */

import { metadataKeyOwner, openObjectField } from "../crypto/object-fields.js";
import type { BatchRow } from "../store/batches.js";
import type { FileRow } from "../store/files.js";
import type { Store } from "../store/store.js";

/** The File object of a stored row, its name opened (sealed under the file's data key). */
export async function fileView(store: Pick<Store, "dataKeys" | "rowCodec">, f: FileRow) {
  return fileObject({ ...f, filename: await openObjectField(store, f.id, "filename", f.filename) });
}

/** The Batch object of a stored row, its metadata opened (sealed under its own data key). */
export async function batchView(store: Pick<Store, "dataKeys" | "rowCodec">, b: BatchRow) {
  return batchObject({ ...b, metadata: await openObjectField(store, metadataKeyOwner(b.id), "metadata", b.metadata) });
}

/** A row with plaintext fields (use fileView for a stored row). */
export function fileObject(f: FileRow) {
  return {
    id: f.id,
    object: "file" as const,
    bytes: Number(f.bytes),
    created_at: Number(f.created_at),
    expires_at: f.expires_at === null ? null : Number(f.expires_at),
    filename: f.filename,
    purpose: f.purpose,
    status: f.status,
    status_details: null,
  };
}

const n = (v: number | null) => (v === null ? null : Number(v));

/** A row with plaintext metadata (use batchView for a stored row). */
export function batchObject(b: BatchRow) {
  const input = Number(b.input_tokens);
  const output = Number(b.output_tokens);
  return {
    id: b.id,
    object: "batch" as const,
    endpoint: b.endpoint,
    model: b.model,
    errors: b.errors === null ? null : (JSON.parse(b.errors) as unknown),
    input_file_id: b.input_file_id,
    completion_window: b.completion_window,
    status: b.status,
    output_file_id: b.output_file_id,
    error_file_id: b.error_file_id,
    created_at: Number(b.created_at),
    in_progress_at: n(b.in_progress_at),
    expires_at: n(b.expires_at),
    finalizing_at: n(b.finalizing_at),
    completed_at: n(b.completed_at),
    failed_at: n(b.failed_at),
    expired_at: n(b.expired_at),
    cancelling_at: n(b.cancelling_at),
    cancelled_at: n(b.cancelled_at),
    request_counts: { total: Number(b.total), completed: Number(b.completed), failed: Number(b.failed) },
    usage: {
      input_tokens: input,
      input_tokens_details: { cached_tokens: Number(b.cached_tokens) },
      output_tokens: output,
      output_tokens_details: { reasoning_tokens: Number(b.reasoning_tokens) },
      total_tokens: input + output,
    },
    metadata: b.metadata === null ? null : (JSON.parse(b.metadata) as Record<string, string>),
    // Extension: an in_progress batch whose engine is away (README "Engines that are away").
    waiting_for_backend: waitingForBackend(b),
    // Extensions (README "Never pay twice"): lines answered without a call of their own.
    reuse: { mode: b.reuse_mode ?? "custom_id+body", reused: Number(b.reused ?? 0) },
    dedup: { mode: b.dedup_mode ?? "deterministic", merged: Number(b.merged ?? 0) },
  };
}

function waitingForBackend(b: BatchRow): { since: number; message: string } | null {
  if (b.status !== "in_progress" || b.waiting_since === null || b.waiting_since === undefined) return null;
  return {
    since: Number(b.waiting_since),
    message:
      "No engine serving this batch's model answers; its lines wait, without spending attempts, until one does or the batch expires.",
  };
}

export function listObject<T extends { id: string }>(data: T[], hasMore: boolean) {
  return {
    object: "list" as const,
    data,
    first_id: data[0]?.id ?? null,
    last_id: data[data.length - 1]?.id ?? null,
    has_more: hasMore,
  };
}
