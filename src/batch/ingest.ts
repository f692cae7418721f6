/**
 * Validation and bulk ingest of a batch's input file, in one streaming pass: every line is
 * validated (errors keep their line number) and valid lines are inserted as request rows in
 * chunks, so a file of millions of lines never sits in memory. Duplicate custom_ids are found by
 * the store's unique index on their keyed hash (custom_ids are sealed like bodies), not an
 * in-memory set.
 */
import type { BlobStore } from "../blob/blob-store.js";
import { openInput } from "../blob/input-source.js";
import type { BatchLease } from "../store/batch-lease.js";
import type { RequestInsertRow } from "../store/dialect.js";
import { insertRequestChunk } from "../store/requests/insert.js";
import { rowCipher } from "../store/row-codec.js";
import type { DedupMode } from "../store/schema.js";
import type { Store } from "../store/store.js";
import { readLines } from "./line-reader.js";
import { isBlank, validateLine } from "./line-validator.js";
import { isDeterministic, requestKeys, reuseKeyOwner } from "./request-key.js";

export interface IngestLimits {
  maxLineBytes: number;
  maxLines: number;
  /** Errors kept in the batch's `errors` list; the total is always counted. */
  maxErrorsKept: number;
  /** Serialized size of the kept errors, bytes (default MAX_ERRORS_BYTES). */
  maxErrorsBytes?: number;
}

/**
 * The kept errors' serialized size is capped too: `errors` is stored in the batch row and returned
 * on every GET and list. Messages never quote input values (see line-validator.ts), so 1,000
 * entries stay far below this; the cap holds whatever a future message carries.
 */
export const MAX_ERRORS_BYTES = 256 * 1024;
/** Longest message kept in an error entry (characters). */
export const MAX_ERROR_MESSAGE_CHARS = 300;

export interface BatchError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

export type IngestResult =
  | { ok: true; total: number; model: string | null }
  | { ok: false; errors: BatchError[]; errorCount: number };

export interface IngestTarget {
  tenantId: string;
  batchId: string;
  endpoint: string;
  blobKey: string;
  /**
   * What serves a model (backends/router.ts `identity`): part of each line's reuse key, so a
   * changed model behind a name never serves old answers. Absent: "" (tests, tools).
   */
  routeIdentity?: ((model: string) => string) | undefined;
  /**
   * Which lines may merge with identical lines of the batch (store/requests/dedup.ts): those get
   * their reuse key as `dedup_key`. Absent: "off".
   */
  dedupMode?: DedupMode | undefined;
}

export async function ingestBatchInput(
  store: Store,
  blobs: BlobStore,
  target: IngestTarget,
  limits: IngestLimits,
  signal?: AbortSignal,
  /** The validation job's lease: every chunk is inserted only while it still holds it. */
  lease?: BatchLease,
): Promise<IngestResult> {
  const errors: BatchError[] = [];
  let errorCount = 0;
  let errorBytes = 0;
  let keeping = true;
  const addError = (e: BatchError) => {
    errorCount++;
    if (!keeping) return;
    const message =
      e.message.length > MAX_ERROR_MESSAGE_CHARS ? `${e.message.slice(0, MAX_ERROR_MESSAGE_CHARS)}…` : e.message;
    const entry = { ...e, message };
    errorBytes += Buffer.byteLength(JSON.stringify(entry)) + 1;
    // Keeping stops at the first entry over either cap; later ones are only counted.
    if (errors.length >= limits.maxErrorsKept || errorBytes > (limits.maxErrorsBytes ?? MAX_ERRORS_BYTES)) {
      keeping = false;
    } else errors.push(entry);
  };

  let chunk: RequestInsertRow[] = [];
  let total = 0;
  let model: string | null = null;
  let mixedModels = false;

  const flush = async () => {
    if (chunk.length === 0) return;
    const rows = chunk;
    chunk = [];
    const { duplicates } = await insertRequestChunk(store, rows, lease);
    for (const d of duplicates) {
      total--;
      addError({
        code: "duplicate_custom_id",
        // Not the custom_id itself: errors are stored unencrypted (up to 512 characters each).
        message: `Duplicate custom_id (first seen on line ${d.firstLine}).`,
        param: "custom_id",
        line: d.line,
      });
    }
  };

  const cipher = await rowCipher(store, target.batchId);
  // Reuse keys are keyed per tenant (not per batch), or nothing would match across batches.
  const tenantKeys = await store.rowCodec.forOwner(reuseKeyOwner(target.tenantId));
  const digest = (text: string) => tenantKeys.digest(text);
  const identities = new Map<string, string>();
  const identityOf = (model: string) => {
    let id = identities.get(model);
    if (id === undefined) {
      id = target.routeIdentity?.(model) ?? "";
      if (identities.size < 1024) identities.set(model, id);
    }
    return id;
  };
  const dedupMode = target.dedupMode ?? "off";
  const mergeable = (body: Record<string, unknown>) =>
    dedupMode === "all" || (dedupMode === "deterministic" && isDeterministic(target.endpoint, body));
  const input = await openInput(blobs, target.blobKey, signal);
  try {
    for await (const raw of readLines(input, limits.maxLineBytes)) {
      signal?.throwIfAborted();
      if (raw.kind === "oversized") {
        addError({
          code: "line_too_large",
          message: `Line is ${raw.size} bytes; the limit is ${limits.maxLineBytes} bytes.`,
          param: null,
          line: raw.line,
        });
        continue;
      }
      if (isBlank(raw.bytes)) continue;
      const result = validateLine(raw.bytes, target.endpoint);
      if (!result.ok) {
        addError({ code: result.code, message: result.message, param: result.param, line: raw.line });
        continue;
      }
      total++;
      if (total > limits.maxLines) {
        addError({
          code: "too_many_tasks",
          message: `The file has more than ${limits.maxLines} requests, the limit per batch.`,
          param: null,
          line: raw.line,
        });
        break;
      }
      if (model === null) model = result.model;
      else if (model !== result.model) mixedModels = true;
      const keys = requestKeys(digest, {
        endpoint: target.endpoint,
        model: result.model,
        routeIdentity: identityOf(result.model),
        body: result.bodyValue,
        customId: result.customId,
      });
      chunk.push({
        tenant_id: target.tenantId,
        batch_id: target.batchId,
        line: raw.line,
        custom_id: cipher.seal("custom_id", raw.line, result.customId),
        custom_id_hash: cipher.customIdHash(result.customId),
        model: result.model,
        body: cipher.seal("body", raw.line, result.body),
        status: "pending",
        prefix_key: null,
        reuse_key: keys.reuseKey,
        resubmit_key: keys.resubmitKey,
        dedup_key: mergeable(result.bodyValue) ? keys.reuseKey : null,
      });
      if (chunk.length >= store.caps.insertChunkRows) await flush();
    }
    await flush();
  } finally {
    input.destroy();
  }

  if (errorCount === 0 && total === 0) {
    addError({ code: "empty_file", message: "The input file has no requests.", param: null, line: null });
  }
  if (errorCount > 0) return { ok: false, errors, errorCount };
  return { ok: true, total, model: mixedModels ? null : model };
}
