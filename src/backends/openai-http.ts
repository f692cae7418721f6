/**
 * OpenAI-compatible HTTP backend (vLLM, SGLang, llama.cpp server, TGI, Ollama, OpenAI itself):
 * one keep-alive undici Pool per backend, a per-request timeout, the caller's AbortSignal honoured,
 * and every outcome classified as a response (any status) or a failure.
 */
import { type Dispatcher, Pool } from "undici";
import type { Backend, BackendCall, BackendResult, ProbeResult } from "./backend.js";
import { usageFromBody } from "./backend.js";
import { probeHttp } from "./probe.js";
import { parseRetryAfter } from "./retry-after.js";

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
  "ENOTFOUND",
  "EADDRNOTAVAIL",
  "ENETDOWN",
  "ECONNABORTED",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/** Of those, the ones where no engine saw the request: the connection was never made. */
const UNREACHED_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EADDRNOTAVAIL",
  "ENETDOWN",
  "UND_ERR_CONNECT_TIMEOUT",
]);

export class OpenAiHttpBackend implements Backend {
  readonly name: string;
  readonly maxConcurrency: number | undefined;
  readonly #pool: Pool;
  readonly #basePath: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #baseUrl: string;
  #closed = false;
  /** Calls in flight, in start order. */
  readonly #calls = new Set<HttpCall>();
  /** Calls by the caller's signal, which is watched with one listener however many calls share it. */
  readonly #bySignal = new WeakMap<AbortSignal, Set<HttpCall>>();
  #sweeper: NodeJS.Timeout | undefined;

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
    this.#baseUrl = options.baseUrl;
  }

  /** `GET /v1/models` with this backend's headers (its key included): any answer below 500 is up. */
  probe(): Promise<ProbeResult> {
    return probeHttp({ baseUrl: this.#baseUrl, headers: this.#headers }, Math.min(5_000, this.#timeoutMs));
  }

  /**
   * One call through undici's handler API: no response stream, no AbortSignal or timer per call
   * (on a fast engine those cost more than the call itself; bench/pipeline-overhead.ts). The
   * caller's signal is shared by many calls (one per batch) and watched once; timeouts are found
   * by one periodic sweep over the calls in flight (each has its own budget: the call's learned
   * `timeoutMs`, capped by the configured one).
   */
  call(request: BackendCall): Promise<BackendResult> {
    return new Promise<BackendResult>((resolve) => {
      if (request.signal.aborted) {
        resolve(ABORTED);
        return;
      }
      const call = new HttpCall(request.signal, this.#timeoutMs, request.budgetMs, resolve, (c) => this.#untrack(c));
      this.#track(call);
      this.#pool.dispatch(
        { method: "POST", path: this.#basePath + request.endpoint, headers: this.#headers, body: request.body },
        call,
      );
    });
  }

  #track(call: HttpCall): void {
    this.#calls.add(call);
    let calls = this.#bySignal.get(call.signal);
    if (calls === undefined) {
      const set = new Set<HttpCall>();
      calls = set;
      this.#bySignal.set(call.signal, set);
      call.signal.addEventListener(
        "abort",
        () => {
          for (const c of [...set]) c.abort("aborted");
        },
        { once: true },
      );
    }
    calls.add(call);
    this.#sweeper ??= setInterval(() => this.#sweep(), sweepEvery(this.#timeoutMs)).unref();
  }

  #untrack(call: HttpCall): void {
    this.#calls.delete(call);
    this.#bySignal.get(call.signal)?.delete(call);
  }

  /** Times out every call past its deadline (budgets differ per call: no order to stop at). */
  #sweep(): void {
    const now = performance.now();
    for (const c of this.#calls) if (c.overdue(now)) c.abort("timeout");
    if (this.#calls.size === 0 && this.#sweeper !== undefined) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    await this.#pool.close().catch(() => this.#pool.destroy());
  }
}

const ABORTED: BackendResult = { kind: "failure", code: "aborted", message: "The call was aborted.", retryable: true };

/**
 * How often timeouts are looked for: a tenth of the configured timeout, between 10 ms and 250 ms
 * (a learned budget is seconds: a quarter second late is noise).
 */
const sweepEvery = (timeoutMs: number) => Math.min(250, Math.max(10, Math.floor(timeoutMs / 10)));

/** One request's undici handler: collects the answer and settles exactly once. */
class HttpCall implements Dispatcher.DispatchHandler {
  readonly signal: AbortSignal;
  readonly #started: number;
  readonly #timeoutMs: number;
  readonly #budgetMs: (() => number | undefined) | undefined;
  /** The budget it was cut at. */
  #cutAtMs = 0;
  readonly #settle: (r: BackendResult) => void;
  readonly #done: (c: HttpCall) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #abortedFor: "aborted" | "timeout" | undefined;
  #settled = false;
  #status = 0;
  #headers: Record<string, string | string[] | undefined> = {};
  #chunks: Buffer[] = [];

  constructor(
    signal: AbortSignal,
    timeoutMs: number,
    budgetMs: (() => number | undefined) | undefined,
    settle: (r: BackendResult) => void,
    done: (c: HttpCall) => void,
  ) {
    this.signal = signal;
    this.#timeoutMs = timeoutMs;
    this.#budgetMs = budgetMs;
    this.#started = performance.now();
    this.#settle = settle;
    this.#done = done;
  }

  /** Whether the call has run past its budget (the learned one, or the configured timeout). */
  overdue(now: number): boolean {
    const learned = this.#budgetMs?.();
    const budget = learned === undefined ? this.#timeoutMs : Math.min(learned, this.#timeoutMs);
    if (now - this.#started < budget) return false;
    this.#cutAtMs = Math.round(budget);
    return true;
  }

  abort(why: "aborted" | "timeout"): void {
    if (this.#settled) return;
    this.#abortedFor = why;
    // Before the request started there is no controller yet: onRequestStart aborts it.
    this.#controller?.abort(new Error(why));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortedFor !== undefined) controller.abort(new Error(this.#abortedFor));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.#status = statusCode;
    this.#headers = headers;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    const chunks = this.#chunks;
    const text = (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).toString("utf8");
    this.#finish(classifyResponse(this.#status, text, this.#headers));
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#finish(this.#failure(err));
  }

  #failure(err: Error): BackendResult {
    if (this.#abortedFor === "timeout") {
      return { kind: "failure", code: "timeout", message: `No answer within ${this.#cutAtMs} ms.`, retryable: true };
    }
    if (this.#abortedFor === "aborted" || this.signal.aborted) return ABORTED;
    const code = connectionCode(err);
    const retryable = CONNECTION_CODES.has(code);
    return {
      kind: "failure",
      code: retryable ? "connection_error" : "backend_error",
      message: `${code ? `${code}: ` : ""}${err.message}`,
      retryable,
      ...(UNREACHED_CODES.has(code) ? { unreached: true as const } : {}),
    };
  }

  #finish(result: BackendResult): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#chunks = [];
    this.#done(this);
    this.#settle(result);
  }
}

/** The error's code, or its cause's (undici wraps some socket errors). */
function connectionCode(err: Error): string {
  const own = (err as { code?: unknown }).code;
  if (typeof own === "string" && CONNECTION_CODES.has(own)) return own;
  const cause = (err as { cause?: { code?: unknown } }).cause?.code;
  if (typeof cause === "string" && CONNECTION_CODES.has(cause)) return cause;
  return typeof own === "string" ? own : "";
}

/** Any HTTP answer → a response; a 2xx body that is not JSON → a non-retryable failure. */
function classifyResponse(
  status: number,
  text: string,
  headers: Record<string, string | string[] | undefined>,
): BackendResult {
  const header = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  let parsed: unknown;
  let verbatim = true;
  try {
    parsed = JSON.parse(text);
  } catch {
    verbatim = false;
    if (status < 300) {
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
    status,
    // Output files are JSONL: a pretty-printed body must be re-serialized onto one line.
    // (Valid JSON holds a raw line break only between tokens; two scans cost less than a regex.)
    bodyText: verbatim && !text.includes("\n") && !text.includes("\r") ? text : JSON.stringify(parsed),
    requestId: header("x-request-id") ?? null,
    usage: status < 300 ? usageFromBody(parsed) : null,
    retryAfterMs: parseRetryAfter(header("retry-after-ms"), header("retry-after")),
  };
}
