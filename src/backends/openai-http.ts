/**
 * OpenAI-compatible HTTP backend (vLLM, SGLang, llama.cpp server, TGI, Ollama, OpenAI itself):
 * one keep-alive undici Pool per backend, a per-request timeout merged with the caller's
 * AbortSignal, and every outcome classified as a response (any status) or a failure.
 */
import { Pool } from "undici";
import { parseRetryAfter } from "../dispatch/retry-policy.js";
import type { Backend, BackendCall, BackendResult } from "./backend.js";
import { usageFromBody } from "./backend.js";

export interface OpenAiHttpOptions {
  baseUrl: string;
  apiKey?: string | undefined;
  headers?: Record<string, string> | undefined;
  timeoutMs: number;
  maxConcurrency?: number | undefined;
  /** Name shown in logs and metrics; defaults to the base URL. */
  name?: string | undefined;
}

const CONNECTION_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

export class OpenAiHttpBackend implements Backend {
  readonly name: string;
  readonly maxConcurrency: number | undefined;
  readonly #pool: Pool;
  readonly #basePath: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  #closed = false;

  constructor(options: OpenAiHttpOptions) {
    const url = new URL(options.baseUrl);
    this.name = options.name ?? options.baseUrl;
    this.maxConcurrency = options.maxConcurrency;
    // Accept both http://host:8000 and http://host:8000/v1: batch endpoints already start with /v1.
    this.#basePath = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
    this.#pool = new Pool(url.origin, {
      connections: options.maxConcurrency ?? 4096,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    this.#headers = { "content-type": "application/json", ...(options.headers ?? {}) };
    if (options.apiKey !== undefined) this.#headers.authorization = `Bearer ${options.apiKey}`;
    this.#timeoutMs = options.timeoutMs;
  }

  async call(request: BackendCall): Promise<BackendResult> {
    // One controller and one timer per call: AbortSignal.any/timeout cost more than the call on a
    // fast engine (measured in bench/pipeline-overhead.ts).
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.#timeoutMs);
    const onAbort = () => controller.abort();
    request.signal.addEventListener("abort", onAbort, { once: true });
    if (request.signal.aborted) controller.abort();
    const signal = controller.signal;
    try {
      const res = await this.#pool.request({
        method: "POST",
        path: this.#basePath + request.endpoint,
        headers: this.#headers,
        body: request.body,
        signal,
      });
      const text = await res.body.text();
      const header = (name: string) => {
        const v = res.headers[name];
        return Array.isArray(v) ? v[0] : v;
      };
      let parsed: unknown;
      let verbatim = true;
      try {
        parsed = JSON.parse(text);
      } catch {
        verbatim = false;
        if (res.statusCode < 300) {
          return {
            kind: "failure",
            code: "invalid_response",
            message: "The backend answered 2xx with a body that is not JSON.",
            retryable: false,
          };
        }
        parsed = { error: { message: text.slice(0, 4096), type: "upstream_error" } };
      }
      return {
        kind: "response",
        status: res.statusCode,
        // Output files are JSONL: a pretty-printed body must be re-serialized onto one line.
        bodyText: verbatim && !/[\r\n]/.test(text) ? text : JSON.stringify(parsed),
        requestId: header("x-request-id") ?? null,
        usage: res.statusCode < 300 ? usageFromBody(parsed) : null,
        retryAfterMs: parseRetryAfter(header("retry-after-ms"), header("retry-after")),
      };
    } catch (err) {
      if (timedOut && !request.signal.aborted) {
        return {
          kind: "failure",
          code: "timeout",
          message: `No answer within ${this.#timeoutMs} ms.`,
          retryable: true,
        };
      }
      if (request.signal.aborted)
        return { kind: "failure", code: "aborted", message: "The call was aborted.", retryable: true };
      const code = (err as { code?: string }).code ?? "";
      const retryable = CONNECTION_CODES.has(code);
      return {
        kind: "failure",
        code: retryable ? "connection_error" : "backend_error",
        message: `${code ? `${code}: ` : ""}${(err as Error).message}`,
        retryable,
      };
    } finally {
      clearTimeout(timer);
      request.signal.removeEventListener("abort", onAbort);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.close().catch(() => this.#pool.destroy());
  }
}
