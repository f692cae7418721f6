/**
 * What a process checks of its engines when it starts, before any line runs:
 *
 * - invalid settings stop it (a ConfigError: exit 2, one line naming the setting): a routing-file
 *   URL that is not http(s) with a host and a valid port (checked by its schema, route-config.ts),
 *   a local model path that is not a readable file, an `api_key_env` naming an unset variable;
 * - each HTTP backend is then probed once, concurrently: one that does not answer is a warning,
 *   never a refusal (an engine may still be loading its model; its batches wait for it).
 */
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { ConfigError } from "../config/setting.js";
import { SluiceError } from "../errors.js";
import type { Logger } from "../logger.js";
import { parseModelSpec } from "./llama-cpp/model-spec.js";
import { probeHttp } from "./probe.js";
import { fileSetting, type HttpBackendSpec, type RouteFile, type RouteSpec } from "./route-config.js";

const MODEL_ACCEPTED = "a .gguf path, demo, hf:user/repo[:quant] or an https URL";

/** How long the start-up probe waits for a backend's answer. */
export const STARTUP_PROBE_TIMEOUT_MS = 3_000;

export type KeyLookup = ((name: string) => string | undefined) | undefined;

/** A model spec for the embedded engine: well-formed, and an existing readable file if a path. */
export async function checkModelSpec(setting: string, model: string): Promise<void> {
  let spec: ReturnType<typeof parseModelSpec>;
  try {
    spec = parseModelSpec(model);
  } catch (err) {
    if (!(err instanceof SluiceError)) throw err;
    throw new ConfigError(setting, err.message.replace(/^Invalid model /, ""), MODEL_ACCEPTED);
  }
  if (spec.kind !== "path") return; // demo, hf: and URLs are fetched (and checked) when first used
  const shown = `'${JSON.stringify(spec.path).slice(1, -1)}'`;
  const problem = await stat(spec.path).then(
    async (s) => (s.isFile() ? await unreadable(spec.path) : "is not a file"),
    (err: NodeJS.ErrnoException) => (err.code === "ENOENT" ? "does not exist" : `cannot be read (${err.code})`),
  );
  if (problem !== undefined) throw new ConfigError(setting, `${shown} ${problem}`, MODEL_ACCEPTED);
}

const unreadable = (path: string) =>
  access(path, constants.R_OK).then(
    () => undefined,
    (err: NodeJS.ErrnoException) => `cannot be read (${err.code})`,
  );

/** The routing file's entries that its schema cannot check: model files, key variables. */
export async function checkRouteFile(file: RouteFile, path: string, keyFromEnv: KeyLookup): Promise<void> {
  for (const [i, route] of file.routes.entries()) {
    for (const [j, backend] of route.backends.entries()) {
      const at = (field: string) => fileSetting(path, ["routes", i, "backends", j, field]);
      if (backend.engine === "llama-cpp") {
        await checkModelSpec(at("model"), backend.model);
      } else if (backend.api_key_env !== undefined && keyFromEnv?.(backend.api_key_env) === undefined) {
        // Unset is a mistake, not "no key": an entry without a key simply has no api_key_env.
        throw new ConfigError(
          at("api_key_env"),
          `names ${JSON.stringify(backend.api_key_env)}, which is not set`,
          "the name of a set, non-empty environment variable",
        );
      }
    }
  }
}

/** The URL as a log line may show it: credentials in it (`http://user:pass@…`) are dropped. */
export function shownUrl(url: string): string {
  const u = new URL(url);
  if (u.username === "" && u.password === "") return url;
  u.username = "";
  u.password = "";
  return u.href;
}

/**
 * Probes each HTTP backend of `routes` once (each URL once), all at the same time; resolves when
 * every probe has answered or timed out, and never rejects. Callers do not wait for it before
 * starting work: a warning names each backend that did not answer, with the cause.
 */
export async function probeBackends(
  routes: readonly RouteSpec[],
  options: { keyFromEnv: KeyLookup; logger: Pick<Logger, "warn" | "debug">; timeoutMs?: number },
): Promise<void> {
  const byUrl = new Map<string, HttpBackendSpec>();
  for (const route of routes) {
    for (const b of route.backends) if (b.engine === "openai" && !byUrl.has(b.url)) byUrl.set(b.url, b);
  }
  const timeoutMs = options.timeoutMs ?? STARTUP_PROBE_TIMEOUT_MS;
  await Promise.all(
    [...byUrl.values()].map(async (b) => {
      const key = b.api_key_env === undefined ? undefined : options.keyFromEnv?.(b.api_key_env);
      // The same headers the backend's calls carry, so a gateway routes the probe like them.
      const headers = { ...b.headers, ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) };
      const backend = shownUrl(b.url);
      try {
        const r = await probeHttp({ baseUrl: b.url, headers }, timeoutMs);
        if (r.ok) options.logger.debug(`backend ${backend} answered (HTTP ${r.status})`, { backend });
        else
          options.logger.warn(`backend ${backend} is not reachable (${r.cause}); its batches wait until it answers`, {
            backend,
            cause: r.cause,
          });
      } catch (err) {
        options.logger.warn(`backend ${backend} could not be probed`, { backend, error: err as Error });
      }
    }),
  );
}
