/**
 * Sluice in embedded mode, in this process, as `sluice run INPUT -o OUTPUT --backend URL` runs it:
 * an SQLite store in a work folder, the input stored as a file, a batch created, the default
 * worker started, the output written in input order once the batch is terminal. Running it
 * in-process lets a benchmark time each phase and read this process's CPU per phase.
 */

import { join } from "node:path";
import { Router } from "../../src/backends/router.js";
import { createBatch } from "../../src/batch/batch-service.js";
import type { BatchStatus } from "../../src/batch/lifecycle.js";
import { isTerminal } from "../../src/batch/lifecycle.js";
import { importLocalFile } from "../../src/batch/local-file.js";
import { writeFinishedFile } from "../../src/batch/result-stream.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { Worker, type WorkerOptions } from "../../src/dispatch/worker.js";
import type { FlowOptions } from "../../src/flow/flow-control.js";
import { silentLogger } from "../../src/logger.js";
import { backendFactory, openRuntime, resolveRoutes } from "../../src/runtime.js";
import { getBatch } from "../../src/store/batches.js";
import { DEFAULT_TENANT } from "../../src/store/tenants.js";

export interface EmbeddedRunOptions {
  inputPath: string;
  outputPath: string;
  /** OpenAI-compatible base URL. */
  backend: string;
  /** Empty folder for the store and blobs. */
  workDir: string;
  /** Worker overrides; absent = the defaults `sluice run` uses. */
  worker?: Partial<WorkerOptions>;
  /**
   * Flow-control overrides (diagnostics only, e.g. a pinned limit to separate the pipeline's own
   * cost from the adaptive limit's choice); absent = adaptive, as `sluice run`.
   */
  flow?: Partial<FlowOptions>;
  /** Called as the batch enters in_progress and finalizing (e.g. to profile the dispatch phase only). */
  onDispatch?: { start(): void; end(): void };
}

export interface Phase {
  ms: number;
  cpuMicros: number;
}

export interface EmbeddedRunResult {
  status: string;
  completed: number;
  failed: number;
  /** Store + blob + batch creation, validation and ingest (until in_progress). */
  ingest: Phase;
  /** in_progress → finalizing: claim, call, checkpoint. */
  dispatch: Phase;
  /** finalizing → terminal, then writing OUTPUT. */
  finalize: Phase;
  total: Phase;
  /** The flow controller's limit each time it changed: [ms since dispatch began, limit]. */
  limits: [number, number][];
}

interface Mark {
  at: number;
  cpu: number;
}

const mark = (): Mark => {
  const u = process.cpuUsage();
  return { at: performance.now(), cpu: u.user + u.system };
};
const span = (a: Mark, b: Mark): Phase => ({ ms: b.at - a.at, cpuMicros: b.cpu - a.cpu });

export async function runEmbedded(o: EmbeddedRunOptions): Promise<EmbeddedRunResult> {
  const start = mark();
  const rt = await openRuntime(
    {
      dataDir: o.workDir,
      store: { kind: "sqlite", path: join(o.workDir, "sluice.db") },
      logLevel: "silent",
      limits: DEFAULT_LIMITS,
    },
    {
      execution: { backend: o.backend },
      logger: silentLogger,
      // With flow overrides the worker is assembled below, as openRuntime would, plus those options.
      // As `sluice run`: the output file is written from the store below, not by finalize.
      worker: o.flow === undefined ? { outputFiles: false, ...o.worker } : false,
    },
  );
  let worker = rt.worker;
  if (o.flow !== undefined) {
    const engine = { backend: o.backend };
    const { routes } = await resolveRoutes(engine);
    const router = new Router(routes, backendFactory(engine, silentLogger), o.flow);
    worker = new Worker(rt.ctx, router, { outputFiles: false, ...o.worker });
  }
  try {
    const marks = new Map<BatchStatus, Mark>();
    const limits: [number, number][] = [];
    let terminal: (() => void) | undefined;
    const ended = new Promise<void>((resolve) => {
      terminal = resolve;
    });
    rt.ctx.events.on("batch.status", (e) => {
      marks.set(e.status, mark());
      if (e.status === "in_progress") o.onDispatch?.start();
      if (e.status === "finalizing") o.onDispatch?.end();
      if (isTerminal(e.status)) terminal?.();
    });
    rt.ctx.events.on("backend.limit", (e) => {
      const t0 = marks.get("in_progress")?.at ?? start.at;
      limits.push([Math.round(performance.now() - t0), e.limit]);
    });

    const fileId = await importLocalFile(rt.ctx, DEFAULT_TENANT, o.inputPath);
    const batch = await createBatch(rt.ctx, {
      tenantId: DEFAULT_TENANT,
      inputFileId: fileId,
      endpoint: "/v1/chat/completions",
      completionWindow: "24h",
    });
    worker?.start();
    await ended;
    const b = await getBatch(rt.ctx.store, DEFAULT_TENANT, batch.id);
    await writeFinishedFile(rt.ctx.store, batch.id, o.outputPath);
    const end = mark();
    const inProgress = marks.get("in_progress") ?? end;
    const finalizing = marks.get("finalizing") ?? end;
    return {
      status: b?.status ?? "missing",
      completed: Number(b?.completed ?? 0),
      failed: Number(b?.failed ?? 0),
      ingest: span(start, inProgress),
      dispatch: span(inProgress, finalizing),
      finalize: span(finalizing, end),
      total: span(start, end),
      limits,
    };
  } finally {
    if (worker !== rt.worker) await worker?.stop();
    await rt.close();
  }
}
