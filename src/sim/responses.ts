/** OpenAI response bodies, field for field, as the simulator renders them. */
import { seededRandom } from "./hash.js";

export type FinishReason = "stop" | "length";

export interface GenerationResult {
  id: string;
  created: number;
  model: string;
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

function usage(r: GenerationResult) {
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
    prompt_tokens_details: { cached_tokens: r.cachedTokens, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

const FINGERPRINT = "fp_sluice_sim";

export function chatCompletionBody(r: GenerationResult) {
  return {
    id: r.id,
    object: "chat.completion",
    created: r.created,
    model: r.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: r.text, refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: r.finishReason,
      },
    ],
    usage: usage(r),
    service_tier: "default",
    system_fingerprint: FINGERPRINT,
  };
}

export function completionBody(r: GenerationResult) {
  return {
    id: r.id,
    object: "text_completion",
    created: r.created,
    model: r.model,
    choices: [{ text: r.text, index: 0, logprobs: null, finish_reason: r.finishReason }],
    usage: usage(r),
    system_fingerprint: FINGERPRINT,
  };
}

/** A deterministic unit-length vector for `key`. */
export function embeddingVector(key: number, dimensions: number): Float32Array {
  const rand = seededRandom(key);
  const v = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    const x = rand() * 2 - 1;
    v[i] = x;
    norm += x * x;
  }
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let i = 0; i < dimensions; i++) v[i] = (v[i] as number) * scale;
  return v;
}

export function embeddingBody(model: string, vectors: Float32Array[], encoding: "float" | "base64", tokens: number) {
  return {
    object: "list",
    data: vectors.map((v, index) => ({
      object: "embedding",
      index,
      embedding: encoding === "base64" ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : [...v],
    })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}

export function modelsBody(model: string, created: number) {
  return { object: "list", data: [{ id: model, object: "model", created, owned_by: "sluice-sim" }] };
}
