/** Flags shared by several commands, and their translation to resolved options. */
import type { Command } from "commander";
import type { CommonFlags } from "../config.js";
import type { EngineOptions } from "../runtime.js";

export interface CommonCliFlags extends CommonFlags {}

export interface EngineCliFlags {
  backend?: string;
  config?: string;
  model?: string;
  timeoutMs?: string;
  maxAttempts?: string;
  threads?: string;
  leaseMs?: string;
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option("--data <dir>", "data folder (env SLUICE_DATA)")
    .option("--store <url>", "store: postgres://… or sqlite:PATH (env SLUICE_DATABASE_URL)")
    .option("--blobs <spec>", "blob store: a folder or s3://bucket/prefix (env SLUICE_BLOBS)")
    .option("--log-level <level>", "debug | info | warn | error | silent");
}

export function addEngineOptions(cmd: Command): Command {
  return cmd
    .option("--backend <url>", "default OpenAI-compatible backend for every model (env SLUICE_BACKEND)")
    .option("--config <file>", "routing config (YAML or JSON): models → backend pools (env SLUICE_CONFIG)")
    .option("--model <spec>", "embedded model when no backend is configured: path, demo, hf:… or URL")
    .option("--threads <n>", "CPU threads for the embedded engine")
    .option("--timeout-ms <ms>", "per-request timeout for HTTP backends", undefined)
    .option("--max-attempts <n>", "attempts per request, the first included (default 5)")
    .option("--lease-ms <ms>", "advanced: how long a claimed request stays leased without renewal (default 60000)");
}

const optionalNumber = (v: string | undefined) => (v === undefined ? undefined : Number(v));

export function engineFromFlags(flags: EngineCliFlags, env: NodeJS.ProcessEnv = process.env): EngineOptions {
  return {
    backend: flags.backend ?? env.SLUICE_BACKEND,
    configFile: flags.config ?? env.SLUICE_CONFIG,
    model: flags.model,
    timeoutMs: optionalNumber(flags.timeoutMs),
    maxAttempts: optionalNumber(flags.maxAttempts),
    threads: optionalNumber(flags.threads),
    leaseMs: optionalNumber(flags.leaseMs),
  };
}
