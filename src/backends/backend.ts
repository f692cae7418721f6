/**
 * The Backend interface: one inference target (an OpenAI-compatible HTTP server, the embedded
 * llama.cpp engine, a provider batch API). The dispatcher calls `call` once per attempt; flow
 * control, retries and checkpointing live above it, so a backend only executes and classifies.
 */

export type ProbeResult = { ok: true; status: number } | { ok: false; cause: string };

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  reasoningTokens: number;
}

export interface BackendCall {
  /** The batch endpoint, e.g. "/v1/chat/completions". */
  endpoint: string;
  /** The request body as compact JSON text (as stored). */
  body: string;
  /** Model name from the body (already parsed by ingest). */
  model: string;
  /** Aborts on cancel, lost lease, shutdown or timeout. Always honoured. */
  signal: AbortSignal;
  /**
   * This call's own time budget (ms), learned from the latency observed (flow/call-timeout.ts),
   * read again while the call runs (a call sent before anything was learned is still cut once
   * the budget is known); undefined = not known yet. The backend's configured timeout stays the
   * upper bound. Absent: the configured timeout.
   */
  budgetMs?: (() => number | undefined) | undefined;
}

/** The engine answered over HTTP (any status). */
export interface BackendResponse {
  kind: "response";
  status: number;
  /** Response body text; JSON for OpenAI-compatible servers. */
  bodyText: string;
  /** Upstream request id (x-request-id) when the engine sent one. */
  requestId: string | null;
  usage: TokenUsage | null;
  /** From retry-after-ms / retry-after, when present. */
  retryAfterMs: number | null;
}

/** No HTTP answer: connection refused or reset, timeout, abort, local engine failure. */
export interface BackendFailure {
  kind: "failure";
  code: string;
  message: string;
  /** Whether another attempt could succeed (resets, timeouts: yes; bad model path: no). */
  retryable: boolean;
  /**
   * The call never reached an engine (connection refused, DNS failure, no route to the host,
   * connect timeout): it costs the line no attempt.
   */
  unreached?: true;
}

export type BackendResult = BackendResponse | BackendFailure;

export interface Backend {
  /** Stable name for logs, metrics and flow-control state (e.g. the base URL or "llama-cpp:demo"). */
  readonly name: string;
  /**
   * Hard cap on concurrent calls, when the backend knows one (the embedded engine's sequence
   * count, a configured `concurrency`). Adaptive flow control never exceeds it.
   */
  readonly maxConcurrency: number | undefined;
  call(request: BackendCall): Promise<BackendResult>;
  /**
   * Whether the engine answers at all (the circuit breaker asks while a replica is down). Absent:
   * the backend cannot be away (the embedded engine), a trial call decides.
   */
  probe?(): Promise<ProbeResult>;
  /** Releases sockets, models, contexts. Idempotent. */
  close(): Promise<void>;
}

/** Reads token usage from any OpenAI response shape (chat, completions, embeddings, responses). */
export function usageFromBody(body: unknown): TokenUsage | null {
  if (typeof body !== "object" || body === null) return null;
  const u = (body as { usage?: Record<string, unknown> }).usage;
  if (typeof u !== "object" || u === null) return null;
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);
  const details = (k: string) => (u[k] ?? {}) as Record<string, unknown>;
  const input = num(u.prompt_tokens ?? u.input_tokens);
  const output = num(u.completion_tokens ?? u.output_tokens);
  return {
    inputTokens: input,
    outputTokens: output,
    cachedTokens: num(details("prompt_tokens_details").cached_tokens ?? details("input_tokens_details").cached_tokens),
    reasoningTokens: num(
      details("completion_tokens_details").reasoning_tokens ?? details("output_tokens_details").reasoning_tokens,
    ),
  };
}
