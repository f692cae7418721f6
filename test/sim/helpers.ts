/** Small loopback HTTP helpers for the simulator tests. */
import { request } from "undici";

export interface JsonResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

export async function postJson(
  baseUrl: string,
  path: string,
  body: unknown,
  signal?: AbortSignal,
): Promise<JsonResponse> {
  const res = await request(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...(signal === undefined ? {} : { signal }),
  });
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Record<string, unknown> };
}

export async function getJson(baseUrl: string, path: string): Promise<JsonResponse> {
  const res = await request(`${baseUrl}${path}`);
  return { status: res.statusCode, headers: res.headers, body: (await res.body.json()) as Record<string, unknown> };
}

export function chatBody(system: string, user: string, maxTokens?: number): Record<string, unknown> {
  const body: Record<string, unknown> = {
    model: "sluice-sim",
    messages: [
      { role: "system", content: system },
      { role: "user", content: user },
    ],
  };
  if (maxTokens !== undefined) body["max_tokens"] = maxTokens;
  return body;
}

/** Polls `check` (no fixed sleeps on the assertion path) until it holds or `timeoutMs` passes. */
export async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}
