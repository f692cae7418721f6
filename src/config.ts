/**
 * Configuration is resolved once, here, from flags and environment; everything below receives
 * plain typed options. (The routing file, `--config`, is parsed in src/backends/route-config.ts.)
 */
import { join, resolve } from "node:path";
import { parseInputPrefixes } from "./blob/input-url.js";
import { type MasterKeyring, masterKeysFromEnv } from "./crypto/master-keys.js";
import type { LogLevel } from "./logger.js";
import type { StoreLocation } from "./store/store.js";

export interface Limits {
  /** Largest accepted upload, bytes. */
  maxFileBytes: number;
  /** Largest accepted input line, bytes. */
  maxLineBytes: number;
  /** Most requests in one batch. */
  maxLines: number;
  /** Validation errors kept on a failed batch (all are counted). */
  maxErrorsKept: number;
  /** Largest JSON request body on the API, bytes. */
  maxJsonBodyBytes: number;
  /** Default per-tenant limits (a tenant's own overrides win; `sluice tenants limits`). */
  maxConcurrentBatches: number;
  /** Estimated input tokens of a tenant's unfinished batches, together. */
  maxEnqueuedTokens: number;
  /** API rate limit per key: a token bucket refilled at this rate (0 = off)… */
  rateLimitPerSecond: number;
  /** …holding at most this many requests. */
  rateLimitBurst: number;
  /**
   * `s3://bucket/prefix` locations a batch may name directly as its input (none by default),
   * compared segment by segment; a `{tenant}` segment stands for the tenant's name.
   */
  inputUrlPrefixes: readonly string[];
  /** Form fields accepted next to an upload's file part (only 3 mean anything; the rest is noise). */
  maxFormFields: number;
  /**
   * A request body must deliver `bodyMinBytesPerSecond` over every window of `bodyTimeoutMs`
   * (at least one byte), or the request is answered 408 and its connection closed (0 = off).
   * A rate, not a total: 1 byte every 10 s is cut, a multi-GB upload at any usable speed is not.
   */
  bodyTimeoutMs: number;
  bodyMinBytesPerSecond: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxFileBytes: 10 * 1024 ** 3,
  maxLineBytes: 8 * 1024 ** 2,
  maxLines: 10_000_000,
  maxErrorsKept: 1000,
  maxJsonBodyBytes: 1024 ** 2,
  maxConcurrentBatches: 100,
  maxEnqueuedTokens: 10_000_000_000,
  rateLimitPerSecond: 100,
  rateLimitBurst: 200,
  inputUrlPrefixes: [],
  maxFormFields: 16,
  bodyTimeoutMs: 30_000,
  bodyMinBytesPerSecond: 1024,
};

export interface CommonOptions {
  dataDir: string;
  store: StoreLocation;
  /** Blob store spec: a folder, or s3://bucket/prefix; undefined = <dataDir>/blobs. */
  blobs?: string | undefined;
  logLevel: LogLevel;
  limits: Limits;
  /** Master keys for encryption at rest (SLUICE_MASTER_KEY[_FILE]); absent = plaintext. */
  masterKeys?: MasterKeyring | undefined;
}

export interface CommonFlags {
  data?: string | undefined;
  store?: string | undefined;
  blobs?: string | undefined;
  logLevel?: string | undefined;
}

const envNumber = (env: NodeJS.ProcessEnv, name: string, fallback: number, zeroOk = false): number => {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || (n === 0 && !zeroOk)) {
    throw new Error(`${name} must be a positive number, got '${raw}'`);
  }
  return n;
};

export function resolveLimits(env: NodeJS.ProcessEnv): Limits {
  return {
    maxFileBytes: envNumber(env, "SLUICE_MAX_FILE_BYTES", DEFAULT_LIMITS.maxFileBytes),
    maxLineBytes: envNumber(env, "SLUICE_MAX_LINE_BYTES", DEFAULT_LIMITS.maxLineBytes),
    maxLines: envNumber(env, "SLUICE_MAX_LINES", DEFAULT_LIMITS.maxLines),
    maxErrorsKept: DEFAULT_LIMITS.maxErrorsKept,
    maxJsonBodyBytes: DEFAULT_LIMITS.maxJsonBodyBytes,
    maxConcurrentBatches: envNumber(env, "SLUICE_MAX_CONCURRENT_BATCHES", DEFAULT_LIMITS.maxConcurrentBatches),
    maxEnqueuedTokens: envNumber(env, "SLUICE_MAX_ENQUEUED_TOKENS", DEFAULT_LIMITS.maxEnqueuedTokens),
    rateLimitPerSecond: envNumber(env, "SLUICE_RATE_LIMIT_RPS", DEFAULT_LIMITS.rateLimitPerSecond, true),
    rateLimitBurst: envNumber(env, "SLUICE_RATE_LIMIT_BURST", DEFAULT_LIMITS.rateLimitBurst),
    inputUrlPrefixes: parseInputPrefixes(env.SLUICE_S3_INPUT_PREFIXES),
    maxFormFields: DEFAULT_LIMITS.maxFormFields,
    bodyTimeoutMs: envNumber(env, "SLUICE_BODY_TIMEOUT_MS", DEFAULT_LIMITS.bodyTimeoutMs, true),
    bodyMinBytesPerSecond: envNumber(
      env,
      "SLUICE_BODY_MIN_BYTES_PER_SECOND",
      DEFAULT_LIMITS.bodyMinBytesPerSecond,
      true,
    ),
  };
}

/** Who may read `/metrics`: an admin key (default), or anyone who can reach the port. */
export type MetricsAuth = "admin" | "none";

export function resolveMetricsAuth(env: NodeJS.ProcessEnv): MetricsAuth {
  const raw = env.SLUICE_METRICS_AUTH;
  if (raw === undefined || raw === "" || raw === "admin") return "admin";
  if (raw === "none") return "none";
  throw new Error(`SLUICE_METRICS_AUTH must be 'admin' or 'none', got '${raw.slice(0, 32)}'`);
}

export function resolveStoreLocation(flag: string | undefined, env: NodeJS.ProcessEnv, dataDir: string): StoreLocation {
  const url = flag ?? env.SLUICE_DATABASE_URL;
  if (url !== undefined && /^postgres(ql)?:\/\//.test(url)) return { kind: "postgres", url };
  if (url?.startsWith("sqlite:")) return { kind: "sqlite", path: resolve(url.slice("sqlite:".length)) };
  return { kind: "sqlite", path: join(dataDir, "sluice.db") };
}

export function resolveCommon(flags: CommonFlags, env: NodeJS.ProcessEnv = process.env): CommonOptions {
  const dataDir = resolve(flags.data ?? env.SLUICE_DATA ?? "./sluice-data");
  const logLevel = (flags.logLevel ?? env.SLUICE_LOG_LEVEL ?? "info") as LogLevel;
  return {
    dataDir,
    store: resolveStoreLocation(flags.store, env, dataDir),
    blobs: flags.blobs ?? env.SLUICE_BLOBS,
    logLevel,
    limits: resolveLimits(env),
    masterKeys: masterKeysFromEnv(env),
  };
}
