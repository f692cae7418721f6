/** Flags shared by several commands; they are validated and resolved in src/config.ts. */
import type { Command } from "commander";
import type { CommonFlags, ExecutionFlags } from "../config.js";

export interface CommonCliFlags extends CommonFlags {}

export interface ExecutionCliFlags extends ExecutionFlags {}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option("--data <dir>", "data folder (env SLUICE_DATA)")
    .option("--store <url>", "store: postgres://… or sqlite:PATH (env SLUICE_DATABASE_URL)")
    .option("--blobs <spec>", "blob store: a folder or s3://bucket/prefix (env SLUICE_BLOBS)")
    .option("--log-level <level>", "debug | info | warn | error | silent (env SLUICE_LOG_LEVEL)");
}

export function addExecutionOptions(cmd: Command): Command {
  return cmd
    .option("--backend <url>", "default OpenAI-compatible backend for every model (env SLUICE_BACKEND)")
    .option("--config <file>", "routing config (YAML or JSON): models → backend pools (env SLUICE_CONFIG)")
    .option("--model <spec>", "embedded model when no backend is configured: path, demo, hf:… or URL")
    .option("--threads <n>", "CPU threads for the embedded engine (1–1024)")
    .option("--timeout-ms <ms>", "per-request timeout for HTTP backends (default 600000)")
    .option("--max-attempts <n>", "attempts per request, the first included (1–100, default 5)")
    .option("--lease-ms <ms>", "advanced: how long a claimed request stays leased without renewal (default 60000)");
}
