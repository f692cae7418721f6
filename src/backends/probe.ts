/**
 * Is an OpenAI-compatible server there? One `GET <base>/v1/models`, bounded by a timeout. Used by
 * the circuit breaker (dispatch/circuit-breaker.ts) while a replica is down, and once per backend
 * at start-up (a warning, never a refusal: an engine may still be loading its model).
 *
 * Reachable means any HTTP answer below 500: a 401 or a 404 still proves a server listens (its
 * calls will say what is wrong with them); a 5xx (vLLM and TGI answer 503 while loading) or no
 * answer at all means not yet.
 */
import { request } from "undici";
import type { ProbeResult } from "./backend.js";

export type { ProbeResult };

export interface ProbeTarget {
  /** The backend's base URL as configured (with or without `/v1`). */
  baseUrl: string;
  headers?: Record<string, string> | undefined;
}

/** `http://h:8000/v1/` → `http://h:8000/v1/models`; `http://h:8000` → `http://h:8000/v1/models`. */
export function probeUrl(baseUrl: string): string {
  const url = new URL(baseUrl);
  const base = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${url.origin}${base}/v1/models`;
}

export async function probeHttp(target: ProbeTarget, timeoutMs = 5_000): Promise<ProbeResult> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await request(probeUrl(target.baseUrl), {
      method: "GET",
      headers: target.headers ?? {},
      signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    // The body is not needed; reading it to the end frees the socket.
    await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    if (res.statusCode < 500) return { ok: true, status: res.statusCode };
    return { ok: false, cause: `HTTP ${res.statusCode}` };
  } catch (err) {
    if (signal.aborted) return { ok: false, cause: `no answer within ${timeoutMs} ms` };
    return { ok: false, cause: describeConnectionError(err) };
  }
}

/** `ECONNREFUSED`, `ENOTFOUND host`, … from undici's error and its cause chain, never a header. */
export function describeConnectionError(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && code !== "UND_ERR" && /^E[A-Z_]+$|^UND_ERR_/.test(code)) return code;
    e = e.cause;
  }
  return err instanceof Error ? err.message : String(err);
}
