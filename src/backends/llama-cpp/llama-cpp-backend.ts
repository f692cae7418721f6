/**
 * The embedded engine as a Backend: llama.cpp in-process through node-llama-cpp, serving
 * /v1/chat/completions, /v1/completions and /v1/embeddings with OpenAI response shapes.
 *
 * Lifecycle: open (created by createLlamaCppBackend, model loaded) → closing (new calls fail with
 * backend_closed, in-flight generations are aborted and awaited) → closed (context, model and
 * runtime disposed). close() is idempotent and every disposal step runs even if another throws.
 */
import { setMaxListeners } from "node:events";
import { SluiceError } from "../../errors.js";
import type { Logger } from "../../logger.js";
import type { Backend, BackendCall, BackendFailure, BackendResult } from "../backend.js";
import { Embedder } from "./embeddings.js";
import { GrammarCache } from "./grammar-cache.js";
import { type EngineServices, handleChat, handleCompletion, handleEmbeddings } from "./handlers.js";
import { type LlamaRuntime, loadLlamaRuntime } from "./llama-runtime.js";
import { resolveModelPath } from "./model-source.js";
import { defaultModelCacheDir } from "./model-spec.js";
import { type BodyWithUsage, errorResponse, okResponse } from "./openai-bodies.js";
import { defaultThreads } from "./parallelism.js";
import { SequencePool } from "./sequence-pool.js";

export interface LlamaCppBackendOptions {
  /** A local .gguf path, `demo`, `hf:<user>/<repo>[:<quant>]`, `hf:<user>/<repo>/<file>` or an https URL. */
  model: string;
  /** Where downloaded and generated models live. Default `~/.cache/sluice/models`. */
  cacheDir?: string;
  /** Hugging Face token for gated or private repos. */
  hfToken?: string;
  /** CPU threads for evaluation. Default max(1, cores - 1). */
  threads?: number;
  /** Parallel sequences (the backend's maxConcurrency). Default: as many as fit in memory, up to 32. */
  parallel?: number;
  /** Tokens per sequence. Default min(trained context, 4096). */
  contextSize?: number;
  /** false: CPU only; true: require a GPU; "auto" (default): offload when a GPU is usable. */
  gpu?: boolean | "auto";
  /** max_tokens for chat requests that name none. Default 512. */
  defaultMaxTokens?: number;
  logger?: Logger;
}

export interface LlamaCppBackendInfo {
  modelPath: string;
  sequences: number;
  /** Tokens per sequence. */
  contextSize: number;
  threads: number;
  gpu: string | false;
}

export interface LlamaCppBackend extends Backend {
  readonly info: LlamaCppBackendInfo;
}

export const DEFAULT_CHAT_MAX_TOKENS = 512;

type Handler = (services: EngineServices, model: string, body: unknown, signal: AbortSignal) => Promise<BodyWithUsage>;

const HANDLERS = new Map<string, Handler>([
  ["/v1/chat/completions", handleChat],
  ["/v1/completions", handleCompletion],
  ["/v1/embeddings", handleEmbeddings],
]);

const failure = (code: string, message: string, retryable: boolean): BackendFailure => ({
  kind: "failure",
  code,
  message,
  retryable,
});

class LlamaCppBackendImpl implements LlamaCppBackend {
  readonly name: string;
  readonly maxConcurrency: number;
  readonly info: LlamaCppBackendInfo;
  readonly #runtime: LlamaRuntime;
  readonly #services: EngineServices;
  readonly #logger: Logger | undefined;
  /** Aborts every in-flight call when the backend closes. */
  /** Aborted on close; every call in flight listens to it (many by design: no listener cap). */
  readonly #closing = closingController();
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed: Promise<void> | null = null;

  constructor(name: string, runtime: LlamaRuntime, info: LlamaCppBackendInfo, options: LlamaCppBackendOptions) {
    this.name = name;
    this.#runtime = runtime;
    this.info = info;
    this.maxConcurrency = runtime.sequences.length;
    this.#logger = options.logger;
    this.#services = {
      facts: runtime.facts,
      chatWrapper: runtime.chatWrapper,
      pool: new SequencePool(runtime.sequences),
      grammars: new GrammarCache(runtime.llama),
      embedder: new Embedder(runtime.facts, { contextSize: runtime.facts.contextSize, threads: info.threads }),
      defaultChatMaxTokens: options.defaultMaxTokens ?? DEFAULT_CHAT_MAX_TOKENS,
    };
  }

  async call(request: BackendCall): Promise<BackendResult> {
    if (this.#closed !== null) return failure("backend_closed", `${this.name} is closed.`, true);
    const handler = HANDLERS.get(request.endpoint);
    if (handler === undefined) {
      return errorResponse(
        new SluiceError("unsupported_endpoint", `The embedded engine does not serve ${request.endpoint}.`, {
          status: 400,
          type: "invalid_request_error",
        }),
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(request.body);
    } catch {
      return errorResponse(
        new SluiceError("invalid_json", "The request body is not valid JSON.", {
          status: 400,
          type: "invalid_request_error",
        }),
      );
    }
    // One controller per call, fed by the caller's signal and by close(); listeners removed after.
    const controller = new AbortController();
    const abort = () => controller.abort(request.signal.aborted ? request.signal.reason : this.#closing.signal.reason);
    if (request.signal.aborted || this.#closing.signal.aborted) abort();
    request.signal.addEventListener("abort", abort, { once: true });
    this.#closing.signal.addEventListener("abort", abort, { once: true });
    const work = handler(this.#services, request.model, body, controller.signal);
    this.#inFlight.add(work);
    try {
      return okResponse(await work);
    } catch (err) {
      return this.#classify(err, request.signal);
    } finally {
      this.#inFlight.delete(work);
      request.signal.removeEventListener("abort", abort);
      this.#closing.signal.removeEventListener("abort", abort);
    }
  }

  #classify(err: unknown, callerSignal: AbortSignal): BackendResult {
    if (callerSignal.aborted) return failure("aborted", "The request was aborted.", true);
    if (this.#closing.signal.aborted) return failure("backend_closed", `${this.name} closed during the request.`, true);
    if (err instanceof SluiceError && err.status < 500) return errorResponse(err);
    const message = err instanceof Error ? err.message : String(err);
    this.#logger?.error("llama.cpp request failed", { backend: this.name, error: message });
    return failure("engine_error", `llama.cpp failed: ${message}`, true);
  }

  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing.abort(new SluiceError("backend_closed", `${this.name} is closing.`));
    this.#services.pool.close(new SluiceError("backend_closed", `${this.name} is closed.`));
    // Aborted generations stop after their current decode step; wait so nothing runs on freed memory.
    await Promise.allSettled([...this.#inFlight]);
    const steps = [
      () => this.#services.embedder.close(),
      () => this.#runtime.context.dispose(),
      () => this.#runtime.model.dispose(),
      () => this.#runtime.llama.dispose(),
    ];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        this.#logger?.warn("llama.cpp cleanup step failed", { backend: this.name, error: err as Error });
      }
    }
  }
}

function checkPositiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new SluiceError("invalid_option", `llama-cpp option '${name}' must be a positive integer, got ${value}.`, {
      status: 400,
      type: "invalid_request_error",
      param: name,
    });
  }
}

/** Resolves the model (downloading or generating it if needed), loads it and returns the backend. */
export async function createLlamaCppBackend(options: LlamaCppBackendOptions): Promise<LlamaCppBackend> {
  for (const name of ["threads", "parallel", "contextSize", "defaultMaxTokens"] as const) {
    checkPositiveInteger(name, options[name]);
  }
  const resolveOptions = {
    // Without a configured cache (tests, benches), the default without XDG_CACHE_HOME.
    cacheDir: options.cacheDir ?? defaultModelCacheDir({}),
    ...(options.hfToken !== undefined ? { hfToken: options.hfToken } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  };
  const modelPath = await resolveModelPath(options.model, resolveOptions);
  const threads = options.threads ?? defaultThreads();
  const runtime = await loadLlamaRuntime({
    modelPath,
    threads,
    parallel: options.parallel,
    contextSize: options.contextSize,
    gpu: options.gpu ?? "auto",
    logger: options.logger,
  });
  const info: LlamaCppBackendInfo = {
    modelPath,
    sequences: runtime.sequences.length,
    contextSize: runtime.facts.contextSize,
    threads,
    gpu: runtime.gpu,
  };
  options.logger?.info("llama.cpp model loaded", { ...info });
  return new LlamaCppBackendImpl(`llama-cpp:${options.model}`, runtime, info, options);
}

function closingController(): AbortController {
  const c = new AbortController();
  setMaxListeners(0, c.signal);
  return c;
}
