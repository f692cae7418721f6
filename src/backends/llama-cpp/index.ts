/** The embedded llama.cpp engine: the backend factory and the model-spec helpers the CLI needs. */
export {
  createLlamaCppBackend,
  DEFAULT_CHAT_MAX_TOKENS,
  type LlamaCppBackend,
  type LlamaCppBackendInfo,
  type LlamaCppBackendOptions,
} from "./llama-cpp-backend.js";
export { cachedModelPath, resolveModelPath } from "./model-source.js";
export { defaultModelCacheDir, type ModelSpec, parseModelSpec } from "./model-spec.js";
export { defaultThreads } from "./parallelism.js";
