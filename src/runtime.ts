/**
 * Assembles a process's services from resolved options: store, blob store, event bus, logger,
 * router and (optionally) a worker. Used by `serve`, `worker` and `run`; closing is idempotent and
 * runs every step even if one fails.
 */
import { mkdir } from "node:fs/promises";
import type { Backend } from "./backends/backend.js";
import { OpenAiHttpBackend } from "./backends/openai-http.js";
import { type BackendSpec, loadRouteFile, type RouteSpec, routesFromFile } from "./backends/route-config.js";
import { Router } from "./backends/router.js";
import { checkModelSpec, checkRouteFile } from "./backends/startup-checks.js";
import type { BlobStore } from "./blob/blob-store.js";
import { EncryptedBlobStore } from "./blob/encrypted-blob-store.js";
import { setInputS3Connection } from "./blob/input-source.js";
import { DEFAULT_S3_CONNECTION, openBlobStore } from "./blob/open-blob-store.js";
import type { CommonOptions } from "./config.js";
import type { AppContext } from "./context.js";
import { encryptionAtRest } from "./crypto/row-cipher.js";
import { DEFAULT_RETRY_POLICY } from "./dispatch/retry-policy.js";
import { Worker, type WorkerOptions } from "./dispatch/worker.js";
import { EventBus } from "./events.js";
import { createLogger, type Logger } from "./logger.js";
import { ExpirySweeper } from "./retention/expiry-sweeper.js";
import { openStore } from "./store/store.js";

export interface ExecutionOptions {
  /** Default route for every model: an OpenAI-compatible base URL. */
  backend?: string | undefined;
  /** Routing file (YAML or JSON). */
  configFile?: string | undefined;
  /** Embedded model used as the default route when no backend is configured. */
  model?: string | undefined;
  /** Request timeout for HTTP backends without their own. */
  timeoutMs?: number | undefined;
  maxAttempts?: number | undefined;
  threads?: number | undefined;
  /** Request and batch lease length (ms); shorter means faster takeover after a crash. */
  leaseMs?: number | undefined;
  /** Where the embedded engine keeps downloaded and generated models (SLUICE_MODEL_CACHE). */
  modelCacheDir?: string | undefined;
  /** Hugging Face token for gated model downloads (HF_TOKEN). */
  hfToken?: string | undefined;
  /** The value of the variable a routing file's `api_key_env` names (built by src/config). */
  apiKeyFromEnv?: ((name: string) => string | undefined) | undefined;
}

export interface Runtime {
  ctx: AppContext;
  router: Router | undefined;
  worker: Worker | undefined;
  /** Deletes expired files (started with the worker's process, absent on API-only replicas). */
  sweeper: ExpirySweeper | undefined;
  close(): Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 10 * 60_000;

export interface ResolvedRoutes {
  routes: RouteSpec[];
  maxAttempts: number | undefined;
}

/** The routes of `execution`, checked (backends/startup-checks.ts): a mistake is a ConfigError. */
export async function resolveRoutes(execution: ExecutionOptions): Promise<ResolvedRoutes> {
  const path = execution.configFile;
  const file = path === undefined ? undefined : await loadRouteFile(path);
  if (file !== undefined && path !== undefined) await checkRouteFile(file, path, execution.apiKeyFromEnv);
  if (execution.model !== undefined) await checkModelSpec("--model", execution.model);
  const routes = file === undefined ? [] : routesFromFile(file);
  if (execution.backend !== undefined) {
    routes.push({ patterns: ["*"], backends: [{ engine: "openai", url: execution.backend }] });
  } else if (routes.length === 0) {
    // Nothing configured but a model: the embedded engine serves every model with it. Nothing at
    // all: only lines that ask for the demo model run on it, never a file written for another
    // model (a random-weight model answering "gpt-4o-mini" lines would be a silent lie).
    routes.push({
      patterns: execution.model === undefined ? ["demo"] : ["*"],
      backends: [
        {
          engine: "llama-cpp",
          model: execution.model ?? "demo",
          ...(execution.threads ? { threads: execution.threads } : {}),
        },
      ],
    });
  }
  return { routes, maxAttempts: execution.maxAttempts ?? file?.retry?.max_attempts };
}

export function backendFactory(execution: ExecutionOptions, logger: Logger) {
  return async (spec: BackendSpec): Promise<Backend> => {
    if (spec.engine === "llama-cpp") {
      const { createLlamaCppBackend } = await import("./backends/llama-cpp/index.js");
      return createLlamaCppBackend({
        model: spec.model,
        ...(execution.modelCacheDir !== undefined ? { cacheDir: execution.modelCacheDir } : {}),
        ...(execution.hfToken !== undefined ? { hfToken: execution.hfToken } : {}),
        ...(spec.threads !== undefined
          ? { threads: spec.threads }
          : execution.threads !== undefined
            ? { threads: execution.threads }
            : {}),
        ...(spec.parallel !== undefined ? { parallel: spec.parallel } : {}),
        ...(spec.context_size !== undefined ? { contextSize: spec.context_size } : {}),
        ...(spec.gpu !== undefined ? { gpu: spec.gpu } : {}),
        logger,
      });
    }
    const apiKey = spec.api_key_env === undefined ? undefined : execution.apiKeyFromEnv?.(spec.api_key_env);
    return new OpenAiHttpBackend({
      baseUrl: spec.url,
      apiKey,
      headers: spec.headers,
      timeoutMs: spec.timeout_ms ?? execution.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxConcurrency: spec.concurrency,
    });
  };
}

export async function openRuntime(
  common: CommonOptions,
  options: {
    execution?: ExecutionOptions;
    /** The routes, when the caller resolved (and so checked) them before creating anything. */
    routes?: ResolvedRoutes;
    worker?: Partial<WorkerOptions> | false;
    logger?: Logger;
    blobs?: BlobStore;
    sweepIntervalMs?: number;
  },
): Promise<Runtime> {
  const logger = options.logger ?? createLogger(common.logLevel);
  await mkdir(common.dataDir, { recursive: true });
  const store = await openStore(common.store, { encryption: encryptionAtRest(common.masterKeys) });
  const s3 = common.s3 ?? DEFAULT_S3_CONNECTION;
  // Batch inputs named by `s3://` URL are read with the same connection as S3 blobs.
  setInputS3Connection(s3);
  const plainBlobs: BlobStore = options.blobs ?? (await openBlobStore(common.blobs, common.dataDir, s3));
  // With a master key every blob goes through the framed cipher under its file's or batch's key.
  const blobs = store.dataKeys.enabled ? new EncryptedBlobStore(plainBlobs, store.dataKeys) : plainBlobs;
  const events = new EventBus((err) => logger.warn("event listener failed", { error: err as Error }));
  const ctx: AppContext = { store, blobs, limits: common.limits, events, logger };
  let router: Router | undefined;
  let worker: Worker | undefined;
  if (options.worker !== false) {
    const execution = options.execution ?? {};
    const { routes, maxAttempts } = options.routes ?? (await resolveRoutes(execution));
    router = new Router(routes, backendFactory(execution, logger));
    worker = new Worker(ctx, router, {
      ...(execution.leaseMs !== undefined ? { leaseMs: execution.leaseMs } : {}),
      ...(options.worker ?? {}),
      retry: {
        ...DEFAULT_RETRY_POLICY,
        ...(options.worker?.retry ?? {}),
        ...(maxAttempts !== undefined ? { maxAttempts } : {}),
      },
    });
    events.on("batch.status", (e) => {
      if (e.status === "validating" || e.status === "cancelling") worker?.nudge();
    });
  }
  const sweeper =
    options.worker === false
      ? undefined
      : new ExpirySweeper(ctx, options.sweepIntervalMs === undefined ? {} : { intervalMs: options.sweepIntervalMs });
  sweeper?.start();
  let closed = false;
  return {
    ctx,
    router,
    worker,
    sweeper,
    async close() {
      if (closed) return;
      closed = true;
      for (const step of [() => sweeper?.stop(), () => worker?.stop(), () => blobs.close?.(), () => store.close()]) {
        try {
          await step();
        } catch (err) {
          logger.error("shutdown step failed", { error: err as Error });
        }
      }
    },
  };
}
