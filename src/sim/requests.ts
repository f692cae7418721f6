/**
 * Parses the OpenAI request bodies the simulator serves into the little it needs: the prompt bytes
 * (chat messages rendered in order, so a shared system prompt is a shared prefix), the requested
 * completion length, and embedding options. Hand-written checks rather than zod: this runs on every
 * request in zero-cost mode, where the simulator must stay lean.
 */
import { invalidRequest } from "../errors.js";

export type InferenceKind = "chat" | "completions" | "embeddings";

export interface GenerationRequest {
  kind: "chat" | "completions";
  model: string;
  prompt: Buffer;
  maxTokens: number | undefined;
}

export interface EmbeddingRequest {
  kind: "embeddings";
  model: string;
  inputs: Buffer[];
  dimensions: number;
  encoding: "float" | "base64";
}

export type InferenceRequest = GenerationRequest | EmbeddingRequest;

export const DEFAULT_EMBEDDING_DIMENSIONS = 64;
const MAX_EMBEDDING_DIMENSIONS = 4096;

type Body = Record<string, unknown>;

export function parseInferenceRequest(kind: InferenceKind, body: unknown): InferenceRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw invalidRequest("The request body must be a JSON object.");
  }
  const b = body as Body;
  const model = b["model"];
  if (typeof model !== "string" || model.length === 0) {
    throw invalidRequest("you must provide a model parameter", "model");
  }
  if (b["stream"] === true) {
    throw invalidRequest("Streaming is not supported by the Sluice simulator.", "stream", "unsupported_parameter");
  }
  if (b["n"] !== undefined && b["n"] !== null && b["n"] !== 1) {
    throw invalidRequest("Only n=1 is supported by the Sluice simulator.", "n", "unsupported_parameter");
  }
  if (kind === "embeddings") return parseEmbedding(model, b);
  const prompt = kind === "chat" ? renderChat(b["messages"]) : renderPrompt(b["prompt"]);
  const maxParam = kind === "chat" && b["max_completion_tokens"] != null ? "max_completion_tokens" : "max_tokens";
  return { kind, model, prompt: Buffer.from(prompt), maxTokens: positiveInt(b[maxParam], maxParam) };
}

function renderChat(messages: unknown): string {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw invalidRequest("'messages' must be a non-empty array.", "messages");
  }
  let text = "";
  messages.forEach((m: unknown, i) => {
    if (m === null || typeof m !== "object" || typeof (m as Body)["role"] !== "string") {
      throw invalidRequest(`messages[${i}] must be an object with a string 'role'.`, `messages[${i}]`);
    }
    const msg = m as Body;
    text += `<|${msg["role"] as string}|>\n${renderContent(msg["content"], i)}\n`;
  });
  return `${text}<|assistant|>\n`;
}

function renderContent(content: unknown, i: number): string {
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) {
    throw invalidRequest(`messages[${i}].content must be a string or an array of parts.`, `messages[${i}].content`);
  }
  // Non-text parts (images, audio) count as their JSON, so distinct media give distinct prompts.
  return content
    .map((part: unknown) => {
      const p = part as Body | null;
      return p !== null && p["type"] === "text" && typeof p["text"] === "string" ? p["text"] : JSON.stringify(part);
    })
    .join("");
}

function renderPrompt(prompt: unknown): string {
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === "string") return prompt[0];
  throw invalidRequest("'prompt' must be a string (or an array holding one string) in the simulator.", "prompt");
}

function parseEmbedding(model: string, b: Body): EmbeddingRequest {
  const input = b["input"];
  const inputs = typeof input === "string" ? [input] : input;
  if (!Array.isArray(inputs) || inputs.length === 0 || !inputs.every((x) => typeof x === "string")) {
    throw invalidRequest("'input' must be a string or a non-empty array of strings in the simulator.", "input");
  }
  const dims = positiveInt(b["dimensions"], "dimensions") ?? DEFAULT_EMBEDDING_DIMENSIONS;
  if (dims > MAX_EMBEDDING_DIMENSIONS) {
    throw invalidRequest(`'dimensions' must be at most ${MAX_EMBEDDING_DIMENSIONS}.`, "dimensions");
  }
  const format = b["encoding_format"] ?? "float";
  if (format !== "float" && format !== "base64") {
    throw invalidRequest("'encoding_format' must be 'float' or 'base64'.", "encoding_format");
  }
  return {
    kind: "embeddings",
    model,
    inputs: inputs.map((s: string) => Buffer.from(s)),
    dimensions: dims,
    encoding: format,
  };
}

function positiveInt(value: unknown, param: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw invalidRequest(`'${param}' must be a positive integer.`, param);
  }
  return value;
}
