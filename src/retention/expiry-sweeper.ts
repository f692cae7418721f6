/**
 * Data retention: files (uploads and batch outputs) whose `expires_at` passed are deleted, with
 * their blobs and their data keys; so are the request rows (prompts and results) of ended batches
 * whose `output_expires_after` passed, and those batches' data keys. The batch objects themselves
 * (status, counts, metadata) stay until deleted. Runs in every worker process on an interval;
 * concurrent sweepers are harmless (each deletion is idempotent). States: idle → running → stopped.
 */
import { isInputUrl } from "../blob/input-source.js";
import type { AppContext } from "../context.js";
import { recordAudit } from "../store/audit.js";
import { batchesWithExpiredResults, deleteBatchRequests } from "../store/batches.js";
import { deleteFileRow, listExpiredFiles } from "../store/files.js";
import { nowSeconds } from "../store/tenants.js";

type SweepContext = Pick<AppContext, "store" | "blobs" | "logger">;

/** Deletes every file expired at `now`; returns how many it deleted. */
export async function sweepExpiredFiles(ctx: SweepContext, now = nowSeconds(), pageSize = 100): Promise<number> {
  let deleted = 0;
  for (;;) {
    const page = await listExpiredFiles(ctx.store, now, pageSize);
    for (const file of page) {
      // The row goes first: once it is gone no request can reach the blob.
      if (!(await deleteFileRow(ctx.store, file.tenant_id, file.id))) continue;
      await ctx.store.dataKeys.destroy(file.id);
      if (!isInputUrl(file.blob_key)) await ctx.blobs.delete(file.blob_key);
      await recordAudit(ctx.store, { tenantId: file.tenant_id, keyId: null, action: "file.expire", target: file.id });
      deleted++;
    }
    if (page.length < pageSize) return deleted;
  }
}

/** Deletes the request rows of ended batches past their output retention; returns how many batches. */
export async function sweepExpiredResults(ctx: SweepContext, now = nowSeconds(), pageSize = 100): Promise<number> {
  let swept = 0;
  for (;;) {
    const page = await batchesWithExpiredResults(ctx.store, now, pageSize);
    for (const b of page) {
      await deleteBatchRequests(ctx.store, b.id);
      await ctx.store.dataKeys.destroy(b.id);
      swept++;
    }
    if (page.length < pageSize) return swept;
  }
}

export class ExpirySweeper {
  readonly #ctx: SweepContext;
  readonly #intervalMs: number;
  #state: "idle" | "running" | "stopped" = "idle";
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;

  constructor(ctx: SweepContext, options: { intervalMs?: number } = {}) {
    this.#ctx = ctx;
    this.#intervalMs = options.intervalMs ?? 60_000;
  }

  start(): void {
    if (this.#state !== "idle") return;
    this.#state = "running";
    this.#timer = setInterval(() => void this.sweepNow(), this.#intervalMs);
    this.#timer.unref();
    void this.sweepNow();
  }

  /** One sweep now (skipped while one runs); failures are logged and retried next interval. */
  async sweepNow(): Promise<void> {
    if (this.#sweeping !== undefined || this.#state === "stopped") return;
    this.#sweeping = Promise.all([sweepExpiredFiles(this.#ctx), sweepExpiredResults(this.#ctx)])
      .then(([files, batches]) => {
        if (files + batches > 0) this.#ctx.logger.info("expired data deleted", { files, batches });
      })
      .catch((err: unknown) => this.#ctx.logger.warn("expiry sweep failed", { error: err as Error }))
      .finally(() => {
        this.#sweeping = undefined;
      });
    await this.#sweeping;
  }

  /** Idempotent; waits for a sweep in progress. */
  async stop(): Promise<void> {
    this.#state = "stopped";
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
  }
}
