/**
 * One text generation on one context sequence, with OpenAI semantics: the whole prompt must fit
 * (no silent truncation, no context shift), max_tokens is a hard cap on sampled tokens (EOS and
 * stop-sequence tokens included), and usage counts what the model actually evaluated and sampled.
 * A sequence keeps its KV cache between requests, so a prompt prefix shared with the previous
 * request on that sequence (a common system prompt) is not evaluated again: `cachedTokens`.
 */
import { randomInt } from "node:crypto";
import {
  type LlamaContextSequence,
  type LlamaGrammar,
  LlamaGrammarEvaluationState,
  type LlamaModel,
  type SequenceEvaluateOptions,
  type Token,
  TokenBias,
} from "node-llama-cpp";
import { invalidRequest } from "../../errors.js";
import type { SamplingParams } from "./request-params.js";
import { StopMatcher, type StopTrigger } from "./stop-matcher.js";

export interface GenerationJob {
  /** The full prompt; a leading BOS is optional (added when the model wants one). */
  tokens: readonly Token[];
  /** Request parameter the prompt came from, for error messages ("messages" or "prompt"). */
  promptParam: string;
  stopTriggers: readonly StopTrigger[];
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
  /** Prompt tokens reused from the sequence's cache rather than evaluated. */
  cachedTokens: number;
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

/** The prompt exactly as evaluated: with the BOS the model wants, without a duplicate one. */
function promptWithBos(model: LlamaModel, tokens: readonly Token[]): Token[] {
  const bos = model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
  if (bos === null || tokens[0] === bos) return tokens.slice();
  return [bos, ...tokens];
}

function evaluateOptions(
  model: LlamaModel,
  s: SamplingParams,
  job: GenerationJob,
  generated: Token[],
): SequenceEvaluateOptions {
  const options: SequenceEvaluateOptions = {
    temperature: s.temperature,
    topP: s.topP,
    // node-llama-cpp defaults to top-k 40; OpenAI has no top-k.
    topK: 0,
    // Without a seed node-llama-cpp uses the current second, so same-second requests would repeat.
    seed: s.seed ?? randomInt(0, 2 ** 32),
    yieldEogToken: true,
  };
  // OpenAI applies no repetition penalty unless asked (node-llama-cpp's chat helpers do by default).
  if (s.frequencyPenalty !== 0 || s.presencePenalty !== 0) {
    options.repeatPenalty = {
      punishTokens: () => generated,
      maxPunishTokens: job.sampling.maxTokens ?? job.defaultMaxTokens,
      penalty: 1,
      frequencyPenalty: s.frequencyPenalty,
      presencePenalty: s.presencePenalty,
    };
  }
  if (s.logitBias.size > 0) {
    const bias = new TokenBias(model.tokenizer);
    for (const [token, value] of s.logitBias) bias.set(token as Token, value <= -100 ? "never" : { logit: value });
    options.tokenBias = bias;
  }
  if (job.grammar !== undefined) {
    options.grammarEvaluationState = new LlamaGrammarEvaluationState({ model, grammar: job.grammar });
  }
  return options;
}

/** Runs one generation on `sequence`. Throws the abort reason when `job.signal` fires. */
export async function generate(
  sequence: LlamaContextSequence,
  facts: ModelFacts,
  job: GenerationJob,
): Promise<GenerationResult> {
  const { model, contextSize } = facts;
  const prompt = promptWithBos(model, job.tokens);
  // At least one token must be left to generate into.
  if (prompt.length >= contextSize) {
    throw invalidRequest(
      `This model's context holds ${contextSize} tokens per request, but the prompt has ${prompt.length} tokens.`,
      job.promptParam,
      "context_length_exceeded",
    );
  }
  const maxTokens = Math.min(job.sampling.maxTokens ?? job.defaultMaxTokens, contextSize - prompt.length);
  const stops = new StopMatcher(model, [
    ...job.stopTriggers,
    ...(job.grammar?.stopGenerationTriggers ?? []),
    ...job.sampling.stop,
  ]);
  job.signal.throwIfAborted();

  // Keep the cached prefix, drop the rest; the last prompt token is always evaluated for its logits.
  await sequence.adaptStateToTokens(prompt.slice(0, -1), false);
  job.signal.throwIfAborted();
  const cachedTokens = sequence.nextTokenIndex;

  const generated: Token[] = [];
  let sampled = 0;
  let finishReason: "stop" | "length" = "length";
  let stoppedByString = false;
  const options = evaluateOptions(model, job.sampling, job, generated);
  for await (const token of sequence.evaluate(prompt.slice(cachedTokens), options)) {
    job.signal.throwIfAborted();
    sampled++;
    if (stops.isStopToken(token)) {
      finishReason = "stop";
      break;
    }
    generated.push(token);
    if (stops.hasStrings && stops.endsInStop(generated)) {
      finishReason = "stop";
      stoppedByString = true;
      break;
    }
    if (sampled >= maxTokens) break;
  }
  let text = model.detokenize(generated, false);
  // The text ends at the first stop string; it only just appeared, so it is the first one.
  if (stoppedByString) text = text.slice(0, Math.max(0, stops.firstIndex(text)));
  if (job.grammar?.trimWhitespaceSuffix) text = text.trimEnd();
  return { text, finishReason, promptTokens: prompt.length, cachedTokens, completionTokens: sampled };
}
