/**
 * One text generation on one context sequence, with OpenAI semantics: the whole prompt must fit
 * (no silent truncation, no context shift), max_tokens is clamped to the room left, and usage
 * counts what the model actually evaluated and sampled.
 */
import type {
  LlamaCompletion,
  LlamaCompletionGenerationOptions,
  LlamaContextSequence,
  LlamaGrammar,
  LlamaModel,
  LlamaText,
  Token,
} from "node-llama-cpp";
import { TokenBias } from "node-llama-cpp";
import { invalidRequest } from "../../errors.js";
import type { SamplingParams } from "./request-params.js";

export interface Slot {
  sequence: LlamaContextSequence;
  completion: LlamaCompletion;
}

export interface GenerationJob {
  /** The full prompt; a leading BOS is optional (the engine adds one when the model wants it). */
  tokens: readonly Token[];
  /** Request parameter the prompt came from, for error messages ("messages" or "prompt"). */
  promptParam: string;
  stopTriggers: readonly LlamaText[];
  sampling: SamplingParams;
  /** Used when the request names no max_tokens. */
  defaultMaxTokens: number;
  grammar: LlamaGrammar | undefined;
  signal: AbortSignal;
}

export interface GenerationResult {
  text: string;
  finishReason: "stop" | "length";
  promptTokens: number;
  completionTokens: number;
}

export interface ModelFacts {
  model: LlamaModel;
  /** null when the GGUF does not say; token-id inputs are then refused. */
  vocabSize: number | null;
  contextSize: number;
}

/** Throws a 400 unless every id is a token of this model (an unknown id aborts llama.cpp). */
export function checkTokenIds(facts: ModelFacts, ids: Iterable<number>, param: string): void {
  const { vocabSize } = facts;
  if (vocabSize === null) throw invalidRequest("Token-id input is not supported for this model.", param);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw invalidRequest(`Invalid token id ${id} in '${param}': this model has ${vocabSize} tokens.`, param);
    }
  }
}

/** Splits off the BOS the engine prepends by itself, and counts the prompt as the model sees it. */
function promptInput(model: LlamaModel, tokens: readonly Token[]): { input: Token[]; promptTokens: number } {
  const bos = model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
  const input = bos !== null && tokens[0] === bos ? tokens.slice(1) : tokens.slice();
  return { input, promptTokens: input.length + (bos !== null ? 1 : 0) };
}

function samplingOptions(model: LlamaModel, s: SamplingParams, maxTokens: number): LlamaCompletionGenerationOptions {
  const options: LlamaCompletionGenerationOptions = {
    maxTokens,
    temperature: s.temperature,
    topP: s.topP,
    // OpenAI applies no repetition penalty unless asked; node-llama-cpp applies one by default.
    repeatPenalty:
      s.frequencyPenalty === 0 && s.presencePenalty === 0
        ? false
        : { lastTokens: maxTokens, penalty: 1, frequencyPenalty: s.frequencyPenalty, presencePenalty: s.presencePenalty },
  };
  if (s.seed !== undefined) options.seed = s.seed;
  if (s.logitBias.size > 0) {
    const bias = new TokenBias(model.tokenizer);
    for (const [token, value] of s.logitBias) bias.set(token as Token, value <= -100 ? "never" : { logit: value });
    options.tokenBias = bias;
  }
  return options;
}

/** Runs one generation on `slot`. Throws the abort reason when `job.signal` fires. */
export async function generate(slot: Slot, facts: ModelFacts, job: GenerationJob): Promise<GenerationResult> {
  const { input, promptTokens } = promptInput(facts.model, job.tokens);
  // At least one token must be left to generate into.
  if (promptTokens >= facts.contextSize) {
    throw invalidRequest(
      `This model's context holds ${facts.contextSize} tokens per request, but the prompt has ${promptTokens} tokens.`,
      job.promptParam,
      "context_length_exceeded",
    );
  }
  const maxTokens = Math.min(job.sampling.maxTokens ?? job.defaultMaxTokens, facts.contextSize - promptTokens);
  const stopTriggers: Array<LlamaText | string> = [...job.stopTriggers, ...job.sampling.stop];
  const outputBefore = slot.sequence.tokenMeter.usedOutputTokens;
  const options: LlamaCompletionGenerationOptions = {
    ...samplingOptions(facts.model, job.sampling, maxTokens),
    signal: job.signal,
    disableContextShift: true,
    // Lets the prompt use the whole context: the shift size only reserves room for shifting.
    contextShiftSize: 1,
  };
  if (stopTriggers.length > 0) options.customStopTriggers = stopTriggers;
  if (job.grammar !== undefined) options.grammar = job.grammar;
  const { response, metadata } = await slot.completion.generateCompletionWithMeta(input, options);
  if (metadata.stopReason === "abort") throw job.signal.reason;
  return {
    text: response,
    finishReason: metadata.stopReason === "maxTokens" ? "length" : "stop",
    promptTokens,
    // Every decode that produced logits sampled one token: EOG and stop-sequence tokens included.
    completionTokens: slot.sequence.tokenMeter.usedOutputTokens - outputBefore,
  };
}
