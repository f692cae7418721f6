/**
 * The three endpoints on the embedded engine: parse the body, borrow a sequence, run, shape the
 * OpenAI body. A borrowed sequence always goes back to the pool, aborted or not.
 */
import type { ChatWrapper, LlamaContextSequence, Token } from "node-llama-cpp";
import { renderChat } from "./chat-prompt.js";
import type { Embedder } from "./embeddings.js";
import { checkTokenIds, type GenerationJob, generate, type ModelFacts } from "./generation.js";
import type { GrammarCache } from "./grammar-cache.js";
import { chatCompletionBody, completionBody } from "./openai-bodies.js";
import {
  DEFAULT_COMPLETION_MAX_TOKENS,
  parseChatRequest,
  parseCompletionRequest,
  parseEmbeddingRequest,
  type SamplingParams,
} from "./request-params.js";
import type { SequencePool } from "./sequence-pool.js";

export interface EngineServices {
  facts: ModelFacts;
  chatWrapper: ChatWrapper;
  pool: SequencePool<LlamaContextSequence>;
  grammars: GrammarCache;
  embedder: Embedder;
  /** max_tokens for chat requests that name none. */
  defaultChatMaxTokens: number;
}

type Job = Omit<GenerationJob, "grammar" | "signal" | "sampling">;

async function run(services: EngineServices, sampling: SamplingParams, job: Job, signal: AbortSignal) {
  checkTokenIds(services.facts, sampling.logitBias.keys(), "logit_bias");
  const grammar = await services.grammars.forFormat(sampling.responseFormat);
  const sequence = await services.pool.acquire(signal);
  try {
    return await generate(sequence, services.facts, { ...job, sampling, grammar, signal });
  } finally {
    services.pool.release(sequence);
  }
}

export async function handleChat(services: EngineServices, model: string, body: unknown, signal: AbortSignal) {
  const request = parseChatRequest(body);
  const { tokens, stopTriggers } = renderChat(services.chatWrapper, services.facts.model.tokenizer, request.messages);
  const job: Job = { tokens, stopTriggers, promptParam: "messages", defaultMaxTokens: services.defaultChatMaxTokens };
  return chatCompletionBody(model, await run(services, request.sampling, job, signal));
}

export async function handleCompletion(services: EngineServices, model: string, body: unknown, signal: AbortSignal) {
  const { prompt, sampling } = parseCompletionRequest(body);
  let tokens: Token[];
  if (prompt.kind === "tokens") {
    checkTokenIds(services.facts, prompt.tokens, "prompt");
    tokens = prompt.tokens as Token[];
  } else {
    // Plain text: special-token markup in a prompt is text, not control tokens.
    tokens = services.facts.model.tokenize(prompt.text, false);
  }
  const job: Job = { tokens, stopTriggers: [], promptParam: "prompt", defaultMaxTokens: DEFAULT_COMPLETION_MAX_TOKENS };
  return completionBody(model, await run(services, sampling, job, signal));
}

export async function handleEmbeddings(services: EngineServices, model: string, body: unknown, signal: AbortSignal) {
  return services.embedder.embed(model, parseEmbeddingRequest(body), signal);
}
