/** Tenants and keys for multi-tenant tests, and a raw HTTP helper for what the SDK cannot send. */
import OpenAI from "openai";
import { createApiKey, ensureTenant } from "../../src/store/tenants.js";
import type { TestServer } from "./server.js";

export interface TenantKey {
  tenantId: string;
  keyId: string;
  key: string;
  client: OpenAI;
}

export async function tenantKey(s: TestServer, name: string, admin = false): Promise<TenantKey> {
  const tenant = await ensureTenant(s.runtime.ctx.store, name);
  const { id, key } = await createApiKey(s.runtime.ctx.store, { tenantId: tenant.id, admin });
  return {
    tenantId: tenant.id,
    keyId: id,
    key,
    client: new OpenAI({ baseURL: s.baseURL, apiKey: key, maxRetries: 0 }),
  };
}

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body when it is JSON, else undefined. */
  json: { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<
    string,
    unknown
  >;
}

/** One request with `key` (or none); `body` objects are sent as JSON. */
export async function call(
  s: TestServer,
  key: string | undefined,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const h: Record<string, string> = { ...headers };
  if (key !== undefined) h.authorization = `Bearer ${key}`;
  let payload: FormData | string | Uint8Array | undefined;
  if (body instanceof FormData || typeof body === "string" || body instanceof Uint8Array) payload = body;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    h["content-type"] ??= "application/json";
  }
  const res = await fetch(`${s.baseURL}${path}`, { method, headers: h, body: payload ?? null });
  const text = await res.text();
  let json: RawResponse["json"] = {};
  try {
    json = JSON.parse(text) as RawResponse["json"];
  } catch {
    // not JSON (downloads, SSE)
  }
  return { status: res.status, headers: res.headers, text, json };
}

export function jsonlFile(lines: string[], name = "input.jsonl"): FormData {
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", new Blob([`${lines.join("\n")}\n`]), name);
  return form;
}
