/** Engine settings: where requests go (backend, routing file, embedded model) and how they are run. */
import { defaultModelCacheDir } from "../backends/llama-cpp/model-spec.js";
import type { ExecutionOptions } from "../runtime.js";
import { type Env, fromEnv, fromFlag, httpUrl, integer, pick, read, text } from "./setting.js";

export interface ExecutionFlags {
  backend?: string | undefined;
  config?: string | undefined;
  model?: string | undefined;
  timeoutMs?: string | undefined;
  maxAttempts?: string | undefined;
  threads?: string | undefined;
  leaseMs?: string | undefined;
}

export const EXECUTION_RANGES = {
  threads: integer(1, 1024),
  timeoutMs: integer(1, 86_400_000, " ms"),
  maxAttempts: integer(1, 100),
  leaseMs: integer(1000, 86_400_000, " ms"),
};

export function resolveExecution(flags: ExecutionFlags, env: Env = process.env): ExecutionOptions {
  const hfToken =
    fromEnv(env, "HF_TOKEN", text("a Hugging Face token", "always")) ??
    fromEnv(env, "HUGGING_FACE_HUB_TOKEN", text("a Hugging Face token", "always"));
  return {
    backend: read(pick({ name: "--backend", value: flags.backend }, env, "SLUICE_BACKEND"), httpUrl("url")),
    configFile: read(
      pick({ name: "--config", value: flags.config }, env, "SLUICE_CONFIG"),
      text("a YAML or JSON file"),
    ),
    model: fromFlag("--model", flags.model, text("a .gguf path, demo, hf:user/repo[:quant] or an https URL")),
    timeoutMs: fromFlag("--timeout-ms", flags.timeoutMs, EXECUTION_RANGES.timeoutMs),
    maxAttempts: fromFlag("--max-attempts", flags.maxAttempts, EXECUTION_RANGES.maxAttempts),
    threads: fromFlag("--threads", flags.threads, EXECUTION_RANGES.threads),
    leaseMs: fromFlag("--lease-ms", flags.leaseMs, EXECUTION_RANGES.leaseMs),
    // One cache per user, not per data folder: a downloaded model serves every run.
    modelCacheDir: fromEnv(env, "SLUICE_MODEL_CACHE", text("a folder")) ?? defaultModelCacheDir(env),
    ...(hfToken === undefined ? {} : { hfToken }),
    // A routing file names the variable holding each backend's key (`api_key_env`); the file is
    // read after this, so the lookup is handed down instead of the environment itself.
    apiKeyFromEnv: (name: string) => {
      const value = env[name];
      return value === undefined || value === "" ? undefined : value;
    },
  };
}
