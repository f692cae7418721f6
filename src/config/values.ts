/** The accepted values of the settings that are plain enumerations or numbers in ranges. */
import { z } from "zod";
import { parseCompletionWindow } from "../batch/endpoints.js";
import { decimal, integer, oneOf, type Setting } from "./setting.js";

export const LOG_LEVEL = oneOf(["debug", "info", "warn", "error", "silent"] as const);
export const METRICS_AUTH = oneOf(["admin", "none"] as const);

/** A completion window: a number and a unit (s, m, h, d), 1s to 30d. */
export const DURATION: Setting<string> = {
  accepted: "a duration such as 90m, 24h or 7d (1s to 30d)",
  schema: z.string().refine((v) => {
    try {
      parseCompletionWindow(v);
      return true;
    } catch {
      return false;
    }
  }, "is not a duration"),
};

const MAX = Number.MAX_SAFE_INTEGER;
const GiB = 1024 ** 3;

/** Each Limits field with its variable; the defaults are DEFAULT_LIMITS (src/config.ts). */
export const LIMIT_SETTINGS = {
  maxFileBytes: { env: "SLUICE_MAX_FILE_BYTES", setting: integer(1, MAX, " bytes") },
  maxLineBytes: { env: "SLUICE_MAX_LINE_BYTES", setting: integer(1, GiB, " bytes") },
  maxLines: { env: "SLUICE_MAX_LINES", setting: integer(1, 1_000_000_000) },
  maxErrorsKept: { env: "SLUICE_MAX_ERRORS_KEPT", setting: integer(1, 1_000_000) },
  maxJsonBodyBytes: { env: "SLUICE_MAX_JSON_BODY_BYTES", setting: integer(1024, GiB, " bytes") },
  maxConcurrentBatches: { env: "SLUICE_MAX_CONCURRENT_BATCHES", setting: integer(1, 1_000_000) },
  maxEnqueuedTokens: { env: "SLUICE_MAX_ENQUEUED_TOKENS", setting: integer(1, MAX) },
  rateLimitPerSecond: { env: "SLUICE_RATE_LIMIT_RPS", setting: decimal(0, 1_000_000, "; 0 = off") },
  rateLimitBurst: { env: "SLUICE_RATE_LIMIT_BURST", setting: integer(1, 10_000_000) },
  bodyTimeoutMs: { env: "SLUICE_BODY_TIMEOUT_MS", setting: integer(0, 3_600_000, " ms; 0 = off") },
  bodyMinBytesPerSecond: { env: "SLUICE_BODY_MIN_BYTES_PER_SECOND", setting: integer(0, GiB, " bytes/s") },
} as const;
