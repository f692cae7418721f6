/**
 * The configuration a process starts with, as one log line's fields: where its data lives, which
 * engines serve which models, the limits changed from their defaults, whether data is encrypted
 * at rest. Built from names and locations only: no password, key, token or header value is read
 * into it (and the logger redacts anything that looks like one anyway).
 */
import { join } from "node:path";
import type { RouteSpec } from "../backends/route-config.js";
import { type CommonOptions, DEFAULT_LIMITS, type Limits } from "../config.js";
import type { ExecutionOptions } from "../runtime.js";
import type { StoreLocation } from "../store/store.js";

export interface StartupInput {
  command: "serve" | "worker" | "run";
  common: CommonOptions;
  execution?: ExecutionOptions | undefined;
  /** The resolved routes (absent for an API-only `serve --no-worker`). */
  routes?: readonly RouteSpec[] | undefined;
  /** `serve` only. */
  server?: { host: string; port: number; tls: boolean; worker: boolean; metricsAuth: string } | undefined;
}

/** A URL without its user, password, query and fragment; anything else as it was. */
function bareUrl(text: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return text;
  try {
    const url = new URL(text);
    url.username = "";
    url.password = "";
    url.search = "";
    url.hash = "";
    return url.toString();
  } catch {
    return text;
  }
}

function describeStore(store: StoreLocation): Record<string, unknown> {
  if (store.kind === "sqlite") return { kind: "sqlite", path: store.path };
  try {
    const url = new URL(store.url);
    return {
      kind: "postgres",
      host: url.hostname,
      port: url.port === "" ? 5432 : Number(url.port),
      database: decodeURIComponent(url.pathname.slice(1)),
      ...(store.poolSize !== undefined ? { poolSize: store.poolSize } : {}),
    };
  } catch {
    return { kind: "postgres" };
  }
}

function describeRoute(route: RouteSpec): Record<string, unknown> {
  return {
    match: route.patterns,
    backends: route.backends.map((b) =>
      b.engine === "llama-cpp"
        ? { engine: b.engine, model: bareUrl(b.model), threads: b.threads, parallel: b.parallel, gpu: b.gpu }
        : {
            engine: b.engine,
            url: bareUrl(b.url),
            concurrency: b.concurrency,
            timeoutMs: b.timeout_ms,
            // The variable's name says where the key comes from; the key itself is never read here.
            authFromEnv: b.api_key_env,
            headers: b.headers === undefined ? undefined : Object.keys(b.headers),
          },
    ),
  };
}

/** The limits whose value is not the default. */
function changedLimits(limits: Limits): Partial<Limits> {
  const changed: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(limits)) {
    const fallback = DEFAULT_LIMITS[name as keyof Limits];
    if (JSON.stringify(value) !== JSON.stringify(fallback)) changed[name] = value;
  }
  return changed as Partial<Limits>;
}

export function startupConfig(input: StartupInput): Record<string, unknown> {
  const { common, execution } = input;
  return {
    command: input.command,
    logLevel: common.logLevel,
    dataDir: common.dataDir,
    store: describeStore(common.store),
    blobs: bareUrl(common.blobs ?? join(common.dataDir, "blobs")),
    ...(common.s3?.endpoint !== undefined ? { s3Endpoint: bareUrl(common.s3.endpoint) } : {}),
    encryptionAtRest: common.masterKeys !== undefined,
    limitsChanged: changedLimits(common.limits),
    ...(input.server !== undefined ? { server: input.server } : {}),
    ...(input.routes !== undefined ? { routes: input.routes.map(describeRoute) } : {}),
    ...(execution !== undefined
      ? {
          execution: {
            timeoutMs: execution.timeoutMs,
            maxAttempts: execution.maxAttempts,
            leaseMs: execution.leaseMs,
            threads: execution.threads,
            modelCacheDir: execution.modelCacheDir,
          },
        }
      : {}),
  };
}
