/**
 * Batch-level jobs, each run under the batch's ownership lease so only one worker does it:
 * - validate:  validating → in_progress | failed (ingest, then the reuse pass: lines already
 *              answered for the tenant take those answers, then the merge pass: identical lines
 *              wait for the first one's answer; a crash mid-way is redone from scratch)
 * - complete:  in_progress (every row terminal) → finalizing → completed
 * - expire:    in_progress past expires_at → finalizing → expired (unfinished rows: batch_expired)
 * - cancel:    cancelling → cancelled (unfinished rows: batch_cancelled; finished ones delivered)
 * - resume:    finalizing whose finalizer died → finished by another worker
 *
 * A job runs with a `JobLease`: its signal fires when a renewal fails or finds the lease taken
 * (or the worker stops), and the job stops at its next check; every write it makes is fenced on
 * the lease in the store (store/batch-lease.ts), so a job that lost its lease — paused, partitioned,
 * or just slow to notice — changes nothing the new owner does.
 */
import { ingestBatchInput } from "../batch/ingest.js";
import { type BatchStatus, isTerminal } from "../batch/lifecycle.js";
import { CANCELLED_ERROR, EXPIRED_ERROR } from "../batch/output-lines.js";
import type { AppContext } from "../context.js";
import { SluiceError } from "../errors.js";
import {
  acquireBatchLease,
  type BatchLease,
  LeaseLostError,
  releaseBatchLease,
  renewBatchLease,
} from "../store/batch-lease.js";
import { type BatchRow, clearBatchRequests, getBatchById, setBatchTotal, transitionBatch } from "../store/batches.js";
import { getFile } from "../store/files.js";
import { mergeDuplicates } from "../store/requests/dedup.js";
import { reuseFinishedResults } from "../store/requests/reuse.js";
import { terminateUnfinished } from "../store/requests/terminate.js";
import { nowSeconds } from "../store/tenants.js";
import { finalizeBatch, type JobLease } from "./finalize.js";
import { logBatchEnded, logBatchStarted, logValidationFailed } from "./lifecycle-log.js";

export interface JobContext extends AppContext {
  owner: string;
  /** Batch-level lease; renewed while a long job (ingest) runs. */
  batchLeaseMs: number;
  /** Aborted when the worker stops: long jobs (ingest) give up and hand the batch back. */
  signal: AbortSignal;
  /** Whether finalize writes output and error files (WorkerOptions.outputFiles). */
  outputFiles: boolean;
  /** What serves a model (the router's `identity`), for reuse keys at ingest. */
  routeIdentity?: ((model: string) => string) | undefined;
}

const getRow = (ctx: JobContext, id: string): Promise<BatchRow | undefined> => getBatchById(ctx.store, id);

function emit(ctx: JobContext, b: { id: string; tenant_id: string }, status: BatchStatus) {
  ctx.events.emit("batch.status", { batchId: b.id, tenantId: b.tenant_id, status, at: nowSeconds() });
}

/**
 * Runs `work` under the batch's lease: taken first (or nothing runs), renewed every third of the
 * lease; a renewal that fails or finds the lease gone aborts the job's signal at once. A job that
 * lost its lease ends quietly (its writes were refused); the lease is released at the end.
 */
async function underLease<T>(
  ctx: JobContext,
  id: string,
  status: BatchStatus,
  work: (lease: JobLease) => Promise<T>,
): Promise<T | undefined> {
  const held: BatchLease = { batchId: id, owner: ctx.owner };
  if (!(await acquireBatchLease(ctx.store, held, status, ctx.batchLeaseMs))) return undefined;
  const lost = new AbortController();
  const lease: JobLease = { ...held, signal: AbortSignal.any([ctx.signal, lost.signal]) };
  const timer = setInterval(() => {
    renewBatchLease(ctx.store, held, ctx.batchLeaseMs).then(
      (ok) => {
        if (!ok) lost.abort(new LeaseLostError(id));
      },
      (err: unknown) => lost.abort(new LeaseLostError(id, err)),
    );
  }, ctx.batchLeaseMs / 3);
  try {
    return await work(lease);
  } catch (err) {
    // Stopped on purpose (lease lost, or the worker stopping): the job ends quietly, having
    // written nothing more; anything else is a failure of the job.
    const stopped = lease.signal.aborted && err === lease.signal.reason;
    if (!(err instanceof LeaseLostError) && !stopped) throw err;
    if (err instanceof LeaseLostError || lost.signal.aborted) {
      ctx.logger.warn("batch job stopped: its lease was lost", { batchId: id, status });
    }
    return undefined;
  } finally {
    clearInterval(timer);
    // No-op when the job already cleared the owner; frees the batch at once when it was aborted.
    await releaseBatchLease(ctx.store, held).catch(() => {});
  }
}

export async function validateJob(ctx: JobContext, id: string): Promise<void> {
  await underLease(ctx, id, "validating", async (lease) => {
    const batch = await getRow(ctx, id);
    if (batch === undefined || batch.status !== "validating") return;
    // A previous owner may have died mid-ingest: start from a clean slate.
    await clearBatchRequests(ctx.store, lease);
    const file = await getFile(ctx.store, batch.tenant_id, batch.input_file_id);
    const startedMs = Date.now();
    let result: Awaited<ReturnType<typeof ingestBatchInput>>;
    if (file === undefined) {
      result = {
        ok: false,
        errorCount: 1,
        errors: [
          {
            code: "invalid_input_file",
            message: `Input file '${batch.input_file_id}' no longer exists.`,
            param: "input_file_id",
            line: null,
          },
        ],
      };
    } else {
      try {
        result = await ingestBatchInput(
          ctx.store,
          ctx.blobs,
          {
            tenantId: batch.tenant_id,
            batchId: id,
            endpoint: batch.endpoint,
            blobKey: file.blob_key,
            routeIdentity: ctx.routeIdentity,
            dedupMode: batch.dedup_mode,
          },
          ctx.limits,
          lease.signal,
          lease,
        );
      } catch (err) {
        if (!(err instanceof SluiceError)) throw err;
        result = {
          ok: false,
          errorCount: 1,
          errors: [{ code: err.code, message: err.message, param: null, line: null }],
        };
      }
    }
    const now = nowSeconds();
    const durationMs = Date.now() - startedMs;
    if (result.ok) {
      // Lines the tenant already has answers for take them now, before anything can claim them.
      await reuseFinishedResults(ctx.store, lease, { tenantId: batch.tenant_id, mode: batch.reuse_mode });
      // Identical lines of the batch left wait for the first one's answer (one call for all).
      await mergeDuplicates(ctx.store, lease);
      const fields = { in_progress_at: now, total: result.total, model: result.model };
      const moved = await transitionBatch(
        ctx.store,
        id,
        ["validating"],
        "in_progress",
        { ...fields, owner: null, owner_expires_ms: null },
        ctx.owner,
      );
      if (moved) {
        logBatchStarted(ctx.logger, batch, { lines: result.total, model: result.model, durationMs });
        emit(ctx, batch, "in_progress");
      } else await setBatchTotal(ctx.store, id, result.total, ctx.owner);
      return;
    }
    await clearBatchRequests(ctx.store, lease);
    const errors = { object: "list", data: result.errors, total_count: result.errorCount };
    if (
      await transitionBatch(
        ctx.store,
        id,
        ["validating", "cancelling"],
        "failed",
        { failed_at: now, errors: JSON.stringify(errors), owner: null, owner_expires_ms: null },
        ctx.owner,
      )
    ) {
      logValidationFailed(ctx.logger, batch, {
        errorCount: result.errorCount,
        firstCode: result.errors[0]?.code,
        durationMs,
      });
      emit(ctx, batch, "failed");
    }
  });
}

/**
 * A batch whose jobs kept throwing (Worker's job retries ran out) → failed, from whatever
 * non-terminal status it is in. The message names no cause: the error may carry paths, hosts or
 * input; the server log has it.
 */
export async function failBatchAfterJobErrors(ctx: JobContext, id: string, attempts: number): Promise<void> {
  const batch = await getRow(ctx, id);
  if (batch === undefined || isTerminal(batch.status)) return;
  const errors = {
    object: "list",
    data: [
      {
        code: "batch_job_failed",
        message: `Processing this batch failed ${attempts} times in a row (while ${batch.status}); it was stopped. The server log has the cause.`,
        param: null,
        line: null,
      },
    ],
    total_count: 1,
  };
  const moved = await transitionBatch(ctx.store, id, [batch.status as BatchStatus], "failed", {
    failed_at: nowSeconds(),
    errors: JSON.stringify(errors),
    owner: null,
    owner_expires_ms: null,
  });
  if (moved) {
    logBatchEnded(ctx.logger, batch, "failed");
    emit(ctx, batch, "failed");
  }
}

/** in_progress → finalizing (with the end status to reach), taking the batch lease in the same step. */
async function enterFinalizing(
  ctx: JobContext,
  batch: { id: string; tenant_id: string },
  endStatus: "completed" | "expired",
): Promise<boolean> {
  const moved = await transitionBatch(ctx.store, batch.id, ["in_progress"], "finalizing", {
    finalizing_at: nowSeconds(),
    end_status: endStatus,
    owner: ctx.owner,
    owner_expires_ms: Date.now() + ctx.batchLeaseMs,
  });
  if (moved) emit(ctx, batch, "finalizing");
  return moved;
}

/** Returns false when there was nothing to do (rows still unfinished, or not in_progress). */
export async function completeJob(ctx: JobContext, id: string): Promise<boolean> {
  const batch = await getRow(ctx, id);
  if (batch === undefined || batch.status !== "in_progress") return false;
  if (Number(batch.completed) + Number(batch.failed) < Number(batch.total)) return false;
  if (!(await enterFinalizing(ctx, batch, "completed"))) return false;
  await finalizeOwned(ctx, id);
  return true;
}

export async function expireJob(ctx: JobContext, id: string): Promise<void> {
  const batch = await getRow(ctx, id);
  if (batch === undefined || batch.status !== "in_progress") return;
  if (await enterFinalizing(ctx, batch, "expired")) await finalizeOwned(ctx, id);
}

/** Finishes a finalizing batch this worker owns (or whose owner's lease expired). */
export async function finalizeOwned(ctx: JobContext, id: string): Promise<void> {
  await underLease(ctx, id, "finalizing", async (lease) => {
    const batch = await getRow(ctx, id);
    if (batch === undefined || batch.status !== "finalizing") return;
    const expired =
      batch.end_status === "expired" ? await terminateUnfinished(ctx.store, lease, "expired", EXPIRED_ERROR) : 0;
    lease.signal.throwIfAborted();
    const status = await finalizeBatch(ctx, batch, lease, "finalizing", { files: ctx.outputFiles });
    logBatchEnded(ctx.logger, batch, status, expired);
  });
}

export async function cancelJob(ctx: JobContext, id: string): Promise<void> {
  await underLease(ctx, id, "cancelling", async (lease) => {
    const batch = await getRow(ctx, id);
    if (batch === undefined || batch.status !== "cancelling") return;
    const cancelled = await terminateUnfinished(ctx.store, lease, "cancelled", CANCELLED_ERROR);
    lease.signal.throwIfAborted();
    const status = await finalizeBatch(ctx, { ...batch, end_status: "cancelled" }, lease, "cancelling", {
      files: ctx.outputFiles,
    });
    logBatchEnded(ctx.logger, batch, status, cancelled);
  });
}
