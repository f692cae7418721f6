/**
 * Configuration is resolved once, here and in src/config/, from flags and environment: every
 * setting is validated (a bad one stops the process with exit code 2 and one line naming it) and
 * everything below receives plain typed options. This is the only code that reads `process.env`.
 * (The routing file, `--config`, is parsed in src/backends/route-config.ts.)
 */
import { parseInputPrefixes } from "./blob/input-url.js";
import type { S3Connection } from "./blob/s3-blob-store.js";
import { type ExecutionFlags, resolveExecution } from "./config/execution.js";
import { ConfigError, type Env, fromEnv, fromFlag, pick, read } from "./config/setting.js";
import { resolveBlobs, resolveDataDir, resolveS3, resolveStoreLocation } from "./config/storage.js";
import { DURATION, LIMIT_SETTINGS, LOG_LEVEL, METRICS_AUTH } from "./config/values.js";
import { type MasterKeyring, masterKeysFromEnv } from "./crypto/master-keys.js";
import { SluiceError } from "./errors.js";
import type { LogLevel } from "./logger.js";
import type { ExecutionOptions } from "./runtime.js";
import type { StoreLocation } from "./store/store.js";

export { resolveClient, resolveServer, type ServerFlags, type ServerOptions } from "./config/server.js";
export { ConfigError } from "./config/setting.js";
export { resolveS3, resolveStoreLocation };

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
  /** S3 connection for S3 blobs and `s3://` batch inputs; undefined = AWS defaults. */
  s3?: S3Connection | undefined;
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

export function resolveLimits(env: Env = process.env): Limits {
  const get = (name: keyof typeof LIMIT_SETTINGS, fallback: number) =>
    fromEnv(env, LIMIT_SETTINGS[name].env, LIMIT_SETTINGS[name].setting) ?? fallback;
  let inputUrlPrefixes: string[];
  try {
    inputUrlPrefixes = parseInputPrefixes(env.SLUICE_S3_INPUT_PREFIXES);
  } catch (err) {
    // parseInputPrefixes names the entry's position, never its text.
    const detail = (err as Error).message.replace(/^SLUICE_S3_INPUT_PREFIXES /, "");
    throw new ConfigError("SLUICE_S3_INPUT_PREFIXES", detail, "comma-separated s3://bucket/prefix");
  }
  return {
    maxFileBytes: get("maxFileBytes", DEFAULT_LIMITS.maxFileBytes),
    maxLineBytes: get("maxLineBytes", DEFAULT_LIMITS.maxLineBytes),
    maxLines: get("maxLines", DEFAULT_LIMITS.maxLines),
    maxErrorsKept: get("maxErrorsKept", DEFAULT_LIMITS.maxErrorsKept),
    maxJsonBodyBytes: get("maxJsonBodyBytes", DEFAULT_LIMITS.maxJsonBodyBytes),
    maxConcurrentBatches: get("maxConcurrentBatches", DEFAULT_LIMITS.maxConcurrentBatches),
    maxEnqueuedTokens: get("maxEnqueuedTokens", DEFAULT_LIMITS.maxEnqueuedTokens),
    rateLimitPerSecond: get("rateLimitPerSecond", DEFAULT_LIMITS.rateLimitPerSecond),
    rateLimitBurst: get("rateLimitBurst", DEFAULT_LIMITS.rateLimitBurst),
    inputUrlPrefixes,
    maxFormFields: DEFAULT_LIMITS.maxFormFields,
    bodyTimeoutMs: get("bodyTimeoutMs", DEFAULT_LIMITS.bodyTimeoutMs),
    bodyMinBytesPerSecond: get("bodyMinBytesPerSecond", DEFAULT_LIMITS.bodyMinBytesPerSecond),
  };
}

/** Who may read `/metrics`: an admin key (default), or anyone who can reach the port. */
export type MetricsAuth = "admin" | "none";

export function resolveMetricsAuth(env: Env = process.env): MetricsAuth {
  return fromEnv(env, "SLUICE_METRICS_AUTH", METRICS_AUTH) ?? "admin";
}

export function resolveLogLevel(
  flag: string | undefined,
  env: Env = process.env,
  fallback: LogLevel = "info",
): LogLevel {
  return read(pick({ name: "--log-level", value: flag }, env, "SLUICE_LOG_LEVEL"), LOG_LEVEL) ?? fallback;
}

/** SLUICE_MASTER_KEY or SLUICE_MASTER_KEY_FILE; their errors never quote a key. */
export function resolveMasterKeys(env: Env = process.env): MasterKeyring | undefined {
  try {
    return masterKeysFromEnv(env);
  } catch (err) {
    if (!(err instanceof SluiceError)) throw err;
    const name = env.SLUICE_MASTER_KEY_FILE ? "SLUICE_MASTER_KEY_FILE" : "SLUICE_MASTER_KEY";
    throw new ConfigError(name, err.message.replace(/\.$/, ""), "[id:]base64 of 32 bytes, comma- or newline-separated");
  }
}

/** The settings of commands that work on a store (serve, worker, keys, tenants). */
export function resolveCommon(flags: CommonFlags, env: Env = process.env): CommonOptions {
  const dataDir = resolveDataDir(flags.data, env);
  return {
    dataDir,
    store: resolveStoreLocation(flags.store, env, dataDir),
    blobs: resolveBlobs(flags.blobs, env),
    s3: resolveS3(env),
    logLevel: resolveLogLevel(flags.logLevel, env),
    limits: resolveLimits(env),
    masterKeys: resolveMasterKeys(env),
  };
}

export interface Config {
  common: CommonOptions;
  execution: ExecutionOptions;
}

/** Every setting a server or worker process needs, validated before anything starts. */
export function resolveConfig(flags: CommonFlags & ExecutionFlags, env: Env = process.env): Config {
  return { common: resolveCommon(flags, env), execution: resolveExecution(flags, env) };
}

export interface RunFlags extends ExecutionFlags {
  logLevel?: string | undefined;
  window?: string | undefined;
}

/** `sluice run`: its store lives in the work folder; the rest comes from flags and environment. */
export function resolveRunConfig(
  flags: RunFlags,
  env: Env = process.env,
): Omit<CommonOptions, "dataDir" | "store" | "blobs"> & { execution: ExecutionOptions; window: string } {
  return {
    execution: resolveExecution(flags, env),
    // A one-shot run is quiet unless asked: its progress bar is the output.
    logLevel: resolveLogLevel(flags.logLevel, env, "warn"),
    limits: resolveLimits(env),
    masterKeys: resolveMasterKeys(env),
    s3: resolveS3(env),
    window: fromFlag("--window", flags.window, DURATION) ?? "30d",
  };
}

export type { ExecutionFlags };
export { resolveExecution };
