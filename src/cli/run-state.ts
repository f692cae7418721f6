/**
 * Which batch a `sluice run` works on, decided from the work folder's `run.json` (the batch's id
 * and the input's fingerprint: path, size, mtime):
 *
 *   no state, or its batch is gone ────> new batch over the input
 *   same input, batch unfinished ──────> resume it (the run was interrupted)
 *   same input, every line succeeded ──> nothing to run: the output is rewritten from the store
 *   same input, ended with failures ───> new batch over the same stored file; its succeeded lines
 *                                         are reused, the failed ones run again
 *   input edited ──────────────────────> new batch over the new file; lines whose custom_id and
 *                                         body are unchanged are reused
 *
 * A new batch that reuses lines is recorded with the state it replaces (`previous`) before it is
 * validated. Validation's reuse pass (store/requests/reuse.ts, `custom_id+body`: the folder's
 * store holds one tenant) answers its lines from the previous batch's before the worker starts,
 * so reused lines are never sent; the old batch is deleted after it. A run interrupted anywhere in
 * between finds `previous` still there and redoes what is left. A new batch refused at validation
 * is deleted and `previous` restored: the last good run stays.
 */
import { readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createBatch } from "../batch/batch-service.js";
import { isTerminal } from "../batch/lifecycle.js";
import { importLocalFile } from "../batch/local-file.js";
import { metadataKeyOwner } from "../crypto/object-fields.js";
import { validateJob } from "../dispatch/batch-jobs.js";
import { SluiceError } from "../errors.js";
import type { Runtime } from "../runtime.js";
import { releaseBatchLease } from "../store/batch-lease.js";
import { BATCH_STATUSES } from "../store/batch-status.js";
import { type BatchRow, deleteEndedBatch, getBatch } from "../store/batches.js";
import { deleteFileRow, getFile } from "../store/files.js";
import { DEFAULT_TENANT } from "../store/tenants.js";

interface Fingerprint {
  path: string;
  size: number;
  mtimeMs: number;
}

interface RunState {
  batchId: string;
  input: Fingerprint;
  /** The run this batch replaces, until its lines are carried over (or the new batch is refused). */
  previous?: { batchId: string; input: Fingerprint };
}

export type RunPlan = RunState & {
  /** Why this batch: it decides what is printed once it is prepared. */
  reason: "new" | "resume" | "retry" | "edited" | "done";
};

export interface NewBatchSettings {
  endpoint: string | undefined;
  window: string;
  detectEndpoint: (path: string) => Promise<string>;
}

const statePath = (workDir: string) => join(workDir, "run.json");

async function readState(workDir: string): Promise<RunState | undefined> {
  return readFile(statePath(workDir), "utf8").then(
    (t) => JSON.parse(t) as RunState,
    () => undefined,
  );
}

async function writeState(workDir: string, state: RunState): Promise<void> {
  const path = statePath(workDir);
  await writeFile(`${path}.tmp`, JSON.stringify(state));
  await rename(`${path}.tmp`, path);
}

const sameInput = (a: Fingerprint, b: Fingerprint) => a.size === b.size && a.mtimeMs === b.mtimeMs;

const allSucceeded = (b: BatchRow) =>
  b.status === "completed" && Number(b.failed) === 0 && Number(b.completed) === Number(b.total);

/** Picks (or creates) the batch this run works on; see the header for the cases. */
export async function planRun(
  rt: Runtime,
  workDir: string,
  input: string,
  settings: NewBatchSettings,
): Promise<RunPlan> {
  const info = await stat(input).catch(() => {
    throw new SluiceError("input_not_found", `Input file not found: ${input}`);
  });
  const fingerprint = { path: input, size: info.size, mtimeMs: Math.floor(info.mtimeMs) };
  const state = await readState(workDir);
  const last = state && (await getBatch(rt.ctx.store, DEFAULT_TENANT, state.batchId));
  if (state === undefined || last === undefined) {
    return { ...(await newBatch(rt, workDir, fingerprint, undefined, settings)), reason: "new" };
  }
  if (sameInput(state.input, fingerprint)) {
    if (!isTerminal(last.status)) return { ...state, reason: "resume" };
    if (allSucceeded(last)) return { ...state, reason: "done" };
  }
  const previous = { batchId: state.batchId, input: state.input };
  const reason = sameInput(state.input, fingerprint) ? "retry" : "edited";
  // A retry reads the file already stored in the work folder: same bytes, no second copy.
  const storedFile = reason === "retry" ? await getFile(rt.ctx.store, DEFAULT_TENANT, last.input_file_id) : undefined;
  const next = await newBatch(rt, workDir, fingerprint, storedFile?.id, settings, previous);
  return { ...next, reason };
}

async function newBatch(
  rt: Runtime,
  workDir: string,
  input: Fingerprint,
  fileId: string | undefined,
  settings: NewBatchSettings,
  previous?: RunState["previous"],
): Promise<RunState> {
  const batch = await createBatch(rt.ctx, {
    tenantId: DEFAULT_TENANT,
    inputFileId: fileId ?? (await importLocalFile(rt.ctx, DEFAULT_TENANT, input.path)),
    endpoint: settings.endpoint ?? (await settings.detectEndpoint(input.path)),
    completionWindow: settings.window,
  });
  const state: RunState = { batchId: batch.id, input, ...(previous ? { previous } : {}) };
  await writeState(workDir, state);
  return state;
}

/**
 * Validates the batch if it still is `validating` (here, not in the worker: reused lines must be
 * answered before anything can claim them, and the previous run must still be there to answer
 * them), then deletes the previous run. Returns how many lines were reused.
 */
export async function prepareBatch(rt: Runtime, workDir: string, plan: RunPlan): Promise<number> {
  const { store } = rt.ctx;
  const before = await getBatch(store, DEFAULT_TENANT, plan.batchId);
  if (before?.status === "validating") {
    // A lease left by an earlier run of this folder is a dead process's: this one holds the lock.
    if (before.owner !== null) await releaseBatchLease(store, { batchId: before.id, owner: before.owner });
    const owner = rt.worker?.id ?? "sluice-run";
    const { router } = rt;
    const jobs = {
      ...rt.ctx,
      owner,
      batchLeaseMs: 60_000,
      signal: new AbortController().signal,
      outputFiles: false,
      // The same reuse keys as the worker's validation: a changed engine never serves old answers.
      routeIdentity: router === undefined ? undefined : (model: string) => router.identity(model),
    };
    await validateJob(jobs, plan.batchId);
  }
  const batch = await getBatch(store, DEFAULT_TENANT, plan.batchId);
  if (batch?.status === "validating") {
    throw new SluiceError("batch_not_validated", `Batch ${plan.batchId} could not be validated; rerun the command.`);
  }
  if (plan.previous === undefined || batch === undefined || batch.status === "failed") return 0;
  const old = await getBatch(store, DEFAULT_TENANT, plan.previous.batchId);
  if (old !== undefined) await discardBatch(rt, old, batch.input_file_id);
  await writeState(workDir, { batchId: plan.batchId, input: plan.input });
  return Number(batch.reused);
}

/**
 * After a new batch was refused at validation: deletes it and makes the run it replaced the last
 * run again (false when there was none: then nothing in the folder is worth keeping).
 */
export async function restorePrevious(rt: Runtime, workDir: string, plan: RunPlan): Promise<boolean> {
  if (plan.previous === undefined) return false;
  const previous = await getBatch(rt.ctx.store, DEFAULT_TENANT, plan.previous.batchId);
  const refused = await getBatch(rt.ctx.store, DEFAULT_TENANT, plan.batchId);
  if (previous === undefined) return false;
  if (refused !== undefined) await discardBatch(rt, refused, previous.input_file_id);
  await writeState(workDir, plan.previous);
  return true;
}

/**
 * Deletes a batch of this work folder whatever its status (the run holds the folder's lock and
 * its worker has not started: nothing else can be working on it), its data keys, and its input
 * file unless the batch replacing it reads the same one.
 */
async function discardBatch(rt: Runtime, batch: BatchRow, keepFileId: string): Promise<void> {
  const { store, blobs } = rt.ctx;
  await deleteEndedBatch(store, DEFAULT_TENANT, batch.id, BATCH_STATUSES);
  await store.dataKeys.destroy(batch.id, metadataKeyOwner(batch.id));
  if (batch.input_file_id === keepFileId) return;
  const file = await getFile(store, DEFAULT_TENANT, batch.input_file_id);
  if (file === undefined || !(await deleteFileRow(store, DEFAULT_TENANT, file.id))) return;
  await store.dataKeys.destroy(file.id);
  await blobs.delete(file.blob_key);
}
