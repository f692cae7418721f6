/**
 * Finalize: a batch in `finalizing` (its rows all terminal) gets its output and error files
 * written, in input order, then moves to its end status (completed, expired or cancelled) in one
 * transaction with the file rows, fenced on the batch's lease (store/finalize-commit.ts). File ids
 * derive from the batch id, so a worker that takes over a dead finalizer's lease simply redoes it;
 * blob keys carry the finalizer's attempt, so a finalizer that lost its lease never overwrites the
 * new owner's files: it stops at the next page or at its commit, and deletes what it wrote. With
 * `files: false` (`sluice run`, which writes its `-o` file from the store itself) only the status
 * moves.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import type { BatchStatus } from "../batch/lifecycle.js";
import { finishedPages, joinLines } from "../batch/result-stream.js";
import { outputBlobKeys } from "../blob/blob-keys.js";
import type { AppContext } from "../context.js";
import { newAttemptId } from "../ids.js";
import type { BatchLease } from "../store/batch-lease.js";
import type { BatchRow } from "../store/batches.js";
import { commitFinalized } from "../store/finalize-commit.js";
import { nowSeconds } from "../store/tenants.js";

/** A job's lease and the signal that fires when it is lost (or the worker stops). */
export interface JobLease extends BatchLease {
  readonly signal: AbortSignal;
}

const derivedFileId = (batchId: string, kind: string) =>
  `file-${createHash("sha256").update(`${batchId}:${kind}`).digest("base64url").slice(0, 24)}`;

interface Sink {
  stream: PassThrough;
  done: Promise<{ bytes: number }>;
  lines: number;
  key: string;
}

function openSink(ctx: AppContext, key: string): Sink {
  const stream = new PassThrough({ highWaterMark: 256 * 1024 });
  return { stream, done: ctx.blobs.put(key, stream), lines: 0, key };
}

async function write(sink: Sink, text: string, lines: number): Promise<void> {
  if (lines === 0) return;
  sink.lines += lines;
  if (!sink.stream.write(text)) await once(sink.stream, "drain");
}

interface WrittenFile {
  kind: "output" | "error";
  key: string;
  name: string;
  lines: number;
  bytes: number;
}

/** Streams the batch's terminal rows, in input order, into its output and error blobs. */
async function writeOutputFiles(ctx: AppContext, batch: BatchRow, signal: AbortSignal): Promise<WrittenFile[]> {
  const keys = outputBlobKeys(batch.tenant_id, batch.id, newAttemptId());
  const out = openSink(ctx, keys.output);
  const err = openSink(ctx, keys.errors);
  let outPut: { bytes: number };
  let errPut: { bytes: number };
  try {
    for await (const page of finishedPages(ctx.store, batch.id)) {
      signal.throwIfAborted();
      const outputs = page.reduce((n, l) => n + (l.target === "output" ? 1 : 0), 0);
      await write(out, joinLines(page, "output"), outputs);
      await write(err, joinLines(page, "error"), page.length - outputs);
    }
    out.stream.end();
    err.stream.end();
    [outPut, errPut] = await Promise.all([out.done, err.done]);
  } catch (e) {
    // Stopped (lease lost, worker stopping) or a write failed: both writes end before we return,
    // and nothing of this attempt stays behind.
    out.stream.destroy(e as Error);
    err.stream.destroy(e as Error);
    await Promise.allSettled([out.done, err.done]);
    for (const key of [out.key, err.key]) await ctx.blobs.delete(key).catch(() => {});
    throw e;
  }
  return [
    { kind: "output", key: out.key, name: `${batch.id}_output.jsonl`, lines: out.lines, bytes: outPut.bytes },
    { kind: "error", key: err.key, name: `${batch.id}_error.jsonl`, lines: err.lines, bytes: errPut.bytes },
  ];
}

export async function finalizeBatch(
  ctx: AppContext,
  batch: BatchRow,
  lease: JobLease,
  fromStatus: "finalizing" | "cancelling",
  options: { files?: boolean } = {},
): Promise<BatchStatus> {
  const written = (options.files ?? true) ? await writeOutputFiles(ctx, batch, lease.signal) : [];
  const files = written.filter((f) => f.lines > 0);
  const now = nowSeconds();
  const endStatus = (batch.end_status ?? "completed") as BatchStatus;
  const expiresAt = batch.output_expires_seconds === null ? null : now + Number(batch.output_expires_seconds);
  const ids: Record<string, string | null> = { output: null, error: null };
  for (const f of files) ids[f.kind] = derivedFileId(batch.id, f.kind);
  const total = Number(batch.total);
  // Every row is terminal: the counters say how many succeeded (the output file's line count).
  const failedAll = endStatus === "completed" && total > 0 && Number(batch.completed) === 0;
  const stamp = endStatus === "completed" ? "completed_at" : endStatus === "expired" ? "expired_at" : "cancelled_at";
  try {
    lease.signal.throwIfAborted();
    await commitFinalized(ctx.store, lease, {
      fromStatus,
      endStatus,
      fields: {
        [stamp]: now,
        output_file_id: ids.output ?? null,
        error_file_id: ids.error ?? null,
        ...(failedAll ? { errors: allFailedErrors(total) } : {}),
      },
      files: files.map((f) => ({
        id: derivedFileId(batch.id, f.kind),
        tenant_id: batch.tenant_id,
        purpose: "batch_output",
        filename: f.name,
        bytes: f.bytes,
        created_at: now,
        expires_at: expiresAt,
        status: "processed",
        blob_key: f.key,
      })),
    });
  } catch (err) {
    // Lost the lease (or the worker is stopping): what this attempt wrote is nobody's.
    for (const f of written) await ctx.blobs.delete(f.key).catch(() => {});
    throw err;
  }
  for (const f of written) if (f.lines === 0) await ctx.blobs.delete(f.key);
  ctx.events.emit("batch.status", { batchId: batch.id, tenantId: batch.tenant_id, status: endStatus, at: now });
  return endStatus;
}

const allFailedErrors = (total: number) =>
  JSON.stringify({
    object: "list",
    data: [
      {
        code: "all_requests_failed",
        message: `All ${total} requests failed; see the error file (error_file_id).`,
        param: null,
        line: null,
      },
    ],
  });
