/**
 * Loads the llama.cpp runtime, one model and one context with N parallel sequences, once per
 * backend. Every request borrows a sequence; all sequences decode together in shared batches.
 */
import {
  type ChatWrapper,
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  resolveChatWrapper,
} from "node-llama-cpp";
import { SluiceError } from "../../errors.js";
import type { Logger } from "../../logger.js";
import type { ModelFacts } from "./generation.js";
import { chooseSequences, DEFAULT_CONTEXT_SIZE_CAP } from "./parallelism.js";

export interface LlamaRuntimeOptions {
  modelPath: string;
  threads: number;
  /** Sequence count; undefined picks one from the model's memory needs. */
  parallel: number | undefined;
  /** Tokens per sequence; undefined picks min(trained context, 4096), shrunk if memory is short. */
  contextSize: number | undefined;
  gpu: boolean | "auto";
  logger: Logger | undefined;
}

export interface LlamaRuntime {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  sequences: LlamaContextSequence[];
  chatWrapper: ChatWrapper;
  facts: ModelFacts;
  /** The GPU backend in use ("cuda", "vulkan", "metal"), or false on CPU. */
  gpu: string | false;
}

const engineError = (code: string, message: string, cause?: unknown) =>
  new SluiceError(code, message, { status: 500, type: "server_error", cause });

function vocabSize(model: LlamaModel): number | null {
  const tokens = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
  return Array.isArray(tokens) && tokens.length > 0 ? tokens.length : null;
}

async function loadLlama(options: LlamaRuntimeOptions): Promise<Llama> {
  const { logger } = options;
  try {
    const llama = await getLlama({
      gpu: options.gpu === false ? false : "auto",
      // Never compile llama.cpp at startup: use the prebuilt binaries (or a local build) or fail.
      build: "never",
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => {
        const text = message.trim();
        if (text === "") return;
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) logger?.error(`llama.cpp: ${text}`);
        else logger?.debug(`llama.cpp: ${text}`);
      },
    });
    if (options.gpu === true && llama.gpu === false) {
      await llama.dispose();
      throw engineError(
        "gpu_unavailable",
        "gpu: true was asked for, but no usable GPU backend (CUDA, Vulkan, Metal) was found.",
      );
    }
    return llama;
  } catch (err) {
    if (err instanceof SluiceError) throw err;
    throw engineError(
      "llama_runtime_unavailable",
      `Could not load the llama.cpp runtime: ${err instanceof Error ? err.message : String(err)}. ` +
        "If no prebuilt binary fits this machine, build one with `npx --no node-llama-cpp source build`.",
      err,
    );
  }
}

export async function loadLlamaRuntime(options: LlamaRuntimeOptions): Promise<LlamaRuntime> {
  const llama = await loadLlama(options);
  try {
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: options.modelPath });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw engineError("model_load_failed", `Could not load model ${options.modelPath}: ${reason}`, err);
    }
    const wanted = options.contextSize ?? Math.min(model.trainContextSize, DEFAULT_CONTEXT_SIZE_CAP);
    const sequences =
      options.parallel ??
      (await chooseSequences(
        {
          gpuLayers: model.gpuLayers,
          estimateContextBytes: (contextSize, n) =>
            model.fileInsights.estimateContextResourceRequirementsV2({
              contextSize,
              sequences: n,
              modelGpuLayers: model.gpuLayers,
            }),
          freeVramBytes: async () => (await llama.getVramState()).free,
        },
        wanted,
      ));
    const context = await model.createContext({
      sequences,
      contextSize: options.contextSize ?? { min: Math.min(512, wanted), max: wanted },
      threads: options.threads,
    });
    return {
      llama,
      model,
      context,
      sequences: Array.from({ length: sequences }, () => context.getSequence()),
      chatWrapper: resolveChatWrapper(model),
      facts: { model, vocabSize: vocabSize(model), contextSize: context.contextSize },
      gpu: llama.gpu,
    };
  } catch (err) {
    // Disposing the runtime releases the model and any context created before the failure.
    await llama.dispose().catch(() => undefined);
    throw err;
  }
}
