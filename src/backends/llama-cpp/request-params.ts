/**
 * Parses OpenAI request bodies for the embedded engine into typed requests. Parameters the engine
 * cannot honour (n > 1, streaming, logprobs, tools, echo, ...) are rejected with a 400 naming them
 * rather than silently ignored; harmless ones (user, metadata, store, ...) are dropped.
 */
import { z } from "zod";
import { invalidRequest } from "../../errors.js";
import { parseBody } from "../../validation.js";

/** OpenAI's documented default for /v1/completions. */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

const textPart = z.object({ type: z.literal("text"), text: z.string() });
const content = z.union([z.string(), z.array(z.union([textPart, z.object({ type: z.string() }).passthrough()]))]);

const chatMessage = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool", "function"]),
  content: content.nullable().optional(),
});

const responseFormat = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    json_schema: z.object({ name: z.string().optional(), schema: z.record(z.unknown()).optional() }),
  }),
]);

const sampling = {
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).nullish(),
  seed: z.number().int().nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.number().min(-100).max(100)).nullish(),
  response_format: responseFormat.nullish(),
  n: z.number().int().min(1).nullish(),
  stream: z.boolean().nullish(),
};

const chatBody = z.object({
  ...sampling,
  messages: z.array(chatMessage).min(1),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  tools: z.array(z.unknown()).nullish(),
  functions: z.array(z.unknown()).nullish(),
});

const tokenArray = z.array(z.number().int().min(0));
const completionBody = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1), tokenArray.min(1), z.array(tokenArray.min(1)).length(1)]),
  echo: z.boolean().nullish(),
  suffix: z.string().nullish(),
  best_of: z.number().int().nullish(),
  logprobs: z.number().int().nullish(),
});

const embeddingBody = z.object({
  input: z.union([z.string(), z.array(z.string()).min(1), tokenArray.min(1), z.array(tokenArray.min(1)).min(1)]),
  encoding_format: z.enum(["float", "base64"]).nullish(),
  dimensions: z.number().int().min(1).nullish(),
});

export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; schema: Record<string, unknown> };

export interface SamplingParams {
  /** Explicit cap from the request, or null for the endpoint default. */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  stop: string[];
  /** Unsigned 32-bit; undefined means a fresh random seed. */
  seed: number | undefined;
  frequencyPenalty: number;
  presencePenalty: number;
  /** Token id → bias in [-100, 100]. */
  logitBias: Map<number, number>;
  responseFormat: ResponseFormat;
}

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  text: string;
}

export type Prompt = { kind: "text"; text: string } | { kind: "tokens"; tokens: number[] };

export interface ChatRequest {
  messages: ChatMessage[];
  sampling: SamplingParams;
}

export interface CompletionRequest {
  prompt: Prompt;
  sampling: SamplingParams;
}

export interface EmbeddingRequest {
  inputs: Prompt[];
  encodingFormat: "float" | "base64";
  dimensions: number | null;
}

const unsupported = (param: string, message: string) => invalidRequest(message, param, "unsupported_parameter");

function toSampling(body: z.infer<z.ZodObject<typeof sampling>>, maxTokens: number | null | undefined): SamplingParams {
  if (body.n != null && body.n !== 1)
    throw unsupported("n", "The embedded engine generates one choice per request (n=1).");
  if (body.stream === true) throw unsupported("stream", "Streaming is not supported in batch requests.");
  const logitBias = new Map<number, number>();
  for (const [key, bias] of Object.entries(body.logit_bias ?? {})) {
    if (!/^\d+$/.test(key)) throw invalidRequest(`Invalid logit_bias key '${key}': expected a token id.`, "logit_bias");
    logitBias.set(Number(key), bias);
  }
  const rf = body.response_format ?? { type: "text" as const };
  return {
    maxTokens: maxTokens ?? null,
    // OpenAI's defaults: temperature 1, top_p 1, no penalties.
    temperature: body.temperature ?? 1,
    topP: body.top_p ?? 1,
    stop: body.stop == null ? [] : (typeof body.stop === "string" ? [body.stop] : body.stop).filter((s) => s !== ""),
    seed: body.seed == null ? undefined : Number(BigInt.asUintN(32, BigInt(body.seed))),
    frequencyPenalty: body.frequency_penalty ?? 0,
    presencePenalty: body.presence_penalty ?? 0,
    logitBias,
    responseFormat:
      rf.type === "json_schema"
        ? { type: "json_schema", schema: rf.json_schema.schema ?? {} }
        : rf.type === "json_object"
          ? { type: "json_object" }
          : { type: "text" },
  };
}

function messageText(c: z.infer<typeof content> | null | undefined, i: number): string {
  if (c == null) return "";
  if (typeof c === "string") return c;
  return c
    .map((part, j) => {
      if (part.type === "text" && typeof part.text === "string") return part.text;
      throw unsupported(
        `messages[${i}].content[${j}]`,
        `Content part type '${part.type}' is not supported; only text.`,
      );
    })
    .join("");
}

export function parseChatRequest(body: unknown): ChatRequest {
  const b = parseBody(chatBody, body);
  if (b.logprobs === true) throw unsupported("logprobs", "logprobs are not supported by the embedded engine.");
  if ((b.tools?.length ?? 0) > 0 || (b.functions?.length ?? 0) > 0) {
    throw unsupported("tools", "Tool and function calling are not supported by the embedded engine.");
  }
  const messages = b.messages.map((m, i): ChatMessage => {
    if (m.role === "tool" || m.role === "function") {
      throw unsupported(`messages[${i}].role`, `Messages with role '${m.role}' are not supported (no tool calling).`);
    }
    return { role: m.role === "developer" ? "system" : m.role, text: messageText(m.content, i) };
  });
  return { messages, sampling: toSampling(b, b.max_completion_tokens ?? b.max_tokens) };
}

export function parseCompletionRequest(body: unknown): CompletionRequest {
  const raw = (body as { prompt?: unknown } | null)?.prompt;
  if (Array.isArray(raw) && raw.length > 1 && (typeof raw[0] === "string" || Array.isArray(raw[0]))) {
    throw unsupported("prompt", "One prompt per request: send each prompt as its own batch line.");
  }
  const b = parseBody(completionBody, body);
  if (b.echo === true) throw unsupported("echo", "echo is not supported by the embedded engine.");
  if (b.suffix != null && b.suffix !== "") throw unsupported("suffix", "suffix (infill) is not supported.");
  if (b.best_of != null && b.best_of !== 1) throw unsupported("best_of", "best_of is not supported.");
  if (b.logprobs != null) throw unsupported("logprobs", "logprobs are not supported by the embedded engine.");
  const p = b.prompt;
  const first = Array.isArray(p) ? p[0] : p;
  const prompt: Prompt =
    typeof first === "string"
      ? { kind: "text", text: first }
      : Array.isArray(first)
        ? { kind: "tokens", tokens: first }
        : { kind: "tokens", tokens: p as number[] };
  return { prompt, sampling: toSampling(b, b.max_tokens) };
}

export function parseEmbeddingRequest(body: unknown): EmbeddingRequest {
  const b = parseBody(embeddingBody, body);
  const input = b.input;
  let inputs: Prompt[];
  if (typeof input === "string") inputs = [{ kind: "text", text: input }];
  else if (input.every((x): x is number => typeof x === "number")) inputs = [{ kind: "tokens", tokens: input }];
  else
    inputs = input.map(
      (x): Prompt => (typeof x === "string" ? { kind: "text", text: x } : { kind: "tokens", tokens: x as number[] }),
    );
  return { inputs, encodingFormat: b.encoding_format ?? "float", dimensions: b.dimensions ?? null };
}
