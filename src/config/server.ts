/** Settings of the API server (`sluice serve`) and of the client commands (submit, status…). */
import { z } from "zod";
import { SluiceError } from "../errors.js";
import { type Env, fromEnv, httpUrl, integer, pick, read, type Setting, text } from "./setting.js";
import { METRICS_AUTH } from "./values.js";

export interface ServerFlags {
  host?: string | undefined;
  port?: string | undefined;
}

export interface ServerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  metricsAuth: "admin" | "none";
  /** SLUICE_API_KEY: the default tenant's key; undefined = keys live only in the store. */
  apiKey: string | undefined;
}

const apiKey: Setting<string> = {
  accepted: "a key of at least 16 printable characters",
  secret: "always",
  schema: z.string().regex(/^[\x21-\x7e]{16,}$/, "is invalid"),
};

export function resolveServer(flags: ServerFlags, env: Env = process.env): ServerOptions {
  return {
    host:
      read(pick({ name: "--host", value: flags.host }, {}, undefined), text("a host name or address")) ?? "127.0.0.1",
    port:
      read(pick({ name: "--port", value: flags.port }, env, "SLUICE_PORT"), integer(0, 65535, "; 0 = any free port")) ??
      8080,
    metricsAuth: fromEnv(env, "SLUICE_METRICS_AUTH", METRICS_AUTH) ?? "admin",
    apiKey: fromEnv(env, "SLUICE_API_KEY", apiKey),
  };
}

/** Where the client commands reach a running server (src/cli/http-client.ts). */
export interface ClientOptions {
  baseUrl: string;
  apiKey: string;
}

/** The client commands' `--base-url` and `--api-key` (they win over SLUICE_BASE_URL, SLUICE_API_KEY). */
export interface ClientFlags {
  baseUrl?: string | undefined;
  apiKey?: string | undefined;
}

export function resolveClient(flags: ClientFlags = {}, env: Env = process.env): ClientOptions {
  const baseUrl =
    read(pick({ name: "--base-url", value: flags.baseUrl }, env, "SLUICE_BASE_URL"), httpUrl("url")) ??
    "http://127.0.0.1:8080/v1";
  const key = read(pick({ name: "--api-key", value: flags.apiKey }, env, "SLUICE_API_KEY"), apiKey);
  if (key === undefined) {
    throw new SluiceError(
      "missing_api_key",
      "No API key: pass --api-key or set SLUICE_API_KEY to the key the server printed (or was started with).",
    );
  }
  return { baseUrl: baseUrl.replace(/\/+$/, ""), apiKey: key };
}
