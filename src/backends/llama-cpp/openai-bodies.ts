/** OpenAI response bodies for the embedded engine, and their wrapping as BackendResponses. */

import type { SluiceError } from "../../errors.js";
import { envelope } from "../../errors.js";
import { randomToken } from "../../ids.js";
import type { BackendResponse, TokenUsage } from "../backend.js";
import type { GenerationResult } from "./generation.js";

export interface Usage {
  prompt_tokens: number;
  completion_tokens?: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number };
}

/** Names the engine, as OpenAI's field names a backend configuration. */
const FINGERPRINT = "sluice-llama-cpp";

const now = () => Math.floor(Date.now() / 1000);

function generationUsage(r: GenerationResult): Usage {
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
    prompt_tokens_details: { cached_tokens: r.cachedTokens },
  };
}

export function chatCompletionBody(model: string, r: GenerationResult) {
  return {
    id: `chatcmpl-${randomToken()}`,
    object: "chat.completion",
    created: now(),
    model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: r.text, refusal: null },
        logprobs: null,
        finish_reason: r.finishReason,
      },
    ],
    usage: generationUsage(r),
    system_fingerprint: FINGERPRINT,
  };
}

export function completionBody(model: string, r: GenerationResult) {
  return {
    id: `cmpl-${randomToken()}`,
    object: "text_completion",
    created: now(),
    model,
    choices: [{ text: r.text, index: 0, logprobs: null, finish_reason: r.finishReason }],
    usage: generationUsage(r),
    system_fingerprint: FINGERPRINT,
  };
}

export function embeddingsBody(model: string, vectors: ReadonlyArray<number[] | string>, promptTokens: number) {
  return {
    object: "list",
    data: vectors.map((embedding, index) => ({ object: "embedding", index, embedding })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

/** Little-endian float32 bytes in base64, as OpenAI's `encoding_format: "base64"`. */
export function base64Vector(vector: readonly number[]): string {
  return Buffer.from(Float32Array.from(vector).buffer).toString("base64");
}

/** Any OpenAI body that reports usage. */
export interface BodyWithUsage {
  usage: Usage;
}

export function okResponse(body: BodyWithUsage): BackendResponse {
  const usage: TokenUsage = {
    inputTokens: body.usage.prompt_tokens,
    outputTokens: body.usage.completion_tokens ?? 0,
    cachedTokens: body.usage.prompt_tokens_details?.cached_tokens ?? 0,
    reasoningTokens: 0,
  };
  return { kind: "response", status: 200, bodyText: JSON.stringify(body), requestId: null, usage, retryAfterMs: null };
}

/** A request-level error as the OpenAI envelope, with the error's HTTP status. */
export function errorResponse(err: SluiceError): BackendResponse {
  return {
    kind: "response",
    status: err.status,
    bodyText: JSON.stringify(envelope(err)),
    requestId: null,
    usage: null,
    retryAfterMs: null,
  };
}
