/**
 * The routing file (`--config sluice.yaml|.json`), validated with zod. Models map, by exact name
 * or glob, to a pool of backend replicas:
 *
 *   routes:
 *     - match: ["llama-3*", "qwen2.5-7b"]
 *       backends:
 *         - url: http://vllm-a:8000/v1
 *           api_key_env: VLLM_KEY          # the key itself never sits in the file
 *           concurrency: 256               # hard cap; adaptive control stays below it
 *           timeout_ms: 600000
 *           headers: { X-Team: search }
 *         - url: http://vllm-b:8000/v1
 *     - match: demo
 *       backends:
 *         - engine: llama-cpp
 *           model: demo                    # a path, `demo`, an hf: URI or an https URL
 *           threads: 1
 */
import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ConfigError, HTTP_URL_ACCEPTED, httpUrlProblem, showValue } from "../config/setting.js";
import { SluiceError } from "../errors.js";

const httpBackend = z
  .object({
    engine: z.literal("openai"),
    // http(s) only, with a host and a valid port: `htp://…` or `vllm:8000` would fail every line.
    url: z.string().superRefine((v, ctx) => {
      const problem = httpUrlProblem(v);
      if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
    }),
    api_key_env: z.string().optional(),
    headers: z.record(z.string()).optional(),
    concurrency: z.number().int().positive().optional(),
    timeout_ms: z.number().int().positive().optional(),
  })
  .strict();

const llamaBackend = z
  .object({
    engine: z.literal("llama-cpp"),
    model: z.string().min(1),
    threads: z.number().int().positive().optional(),
    parallel: z.number().int().positive().optional(),
    context_size: z.number().int().positive().optional(),
    gpu: z.union([z.boolean(), z.literal("auto")]).optional(),
    timeout_ms: z.number().int().positive().optional(),
  })
  .strict();

// `engine` picks the schema (an entry without one is an OpenAI-compatible server), so an error
// names the entry's own field instead of "matches neither kind".
const backendSpec = z.preprocess(
  (v) =>
    typeof v === "object" && v !== null && !Array.isArray(v) && !("engine" in v) ? { ...v, engine: "openai" } : v,
  z.discriminatedUnion("engine", [llamaBackend, httpBackend], {
    errorMap: (issue, ctx) => ({
      message: issue.code === "invalid_union_discriminator" ? "is not openai or llama-cpp" : ctx.defaultError,
    }),
  }),
);

const route = z
  .object({
    match: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    backends: z.array(backendSpec).min(1),
  })
  .strict();

export const routeFileSchema = z
  .object({
    routes: z.array(route).default([]),
    retry: z
      .object({ max_attempts: z.number().int().min(1).max(100).optional() })
      .strict()
      .optional(),
  })
  .strict();

export type RouteFile = z.infer<typeof routeFileSchema>;
export type BackendSpec = z.infer<typeof backendSpec>;
export type HttpBackendSpec = z.infer<typeof httpBackend>;
export type LlamaBackendSpec = z.infer<typeof llamaBackend>;

export interface RouteSpec {
  patterns: string[];
  backends: BackendSpec[];
}

export async function loadRouteFile(path: string): Promise<RouteFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new SluiceError("config_not_found", `Cannot read config file ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = path.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new SluiceError(
      "invalid_config",
      `Config file ${path} is not valid ${path.endsWith(".json") ? "JSON" : "YAML"}: ${(err as Error).message}`,
    );
  }
  const result = routeFileSchema.safeParse(raw ?? {});
  if (!result.success) throw fileSettingError(path, raw, result.error.issues[0]);
  return result.data;
}

/** `routes[0].backends[1].url`: the entry as a reader finds it in the file. */
export function entryName(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("") || "(root)";
}

/** An entry of the routing file as a setting: `routes[0].backends[1].url in sluice.yaml`. */
export function fileSetting(file: string, path: readonly (string | number)[]): string {
  return `${entryName(path)} in ${file}`;
}

function fileSettingError(file: string, raw: unknown, issue: z.ZodIssue | undefined): ConfigError {
  const path = issue?.path ?? [];
  let value: unknown = raw;
  for (const p of path) value = (value as Record<string | number, unknown> | undefined)?.[p];
  const isUrl = path.at(-1) === "url";
  // Only a URL (without credentials) or an engine name is echoed: never a header's value.
  const shown = typeof value === "string" && (isUrl || path.at(-1) === "engine") ? showValue(value, "url") : undefined;
  const problem = issue?.message ?? "is invalid";
  return new ConfigError(
    fileSetting(file, path),
    shown === undefined ? problem : `${shown} ${problem}`,
    isUrl ? HTTP_URL_ACCEPTED : undefined,
  );
}

export function routesFromFile(file: RouteFile): RouteSpec[] {
  return file.routes.map((r) => ({ patterns: Array.isArray(r.match) ? r.match : [r.match], backends: r.backends }));
}
