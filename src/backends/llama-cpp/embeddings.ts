/**
 * /v1/embeddings on a separate embedding context, created on the first embeddings request (a
 * chat-only batch never pays its memory). node-llama-cpp's embedding context evaluates one input
 * at a time, so inputs are processed in order; the signal is checked between them.
 */
import type { LlamaEmbeddingContext, LlamaModel, Token } from "node-llama-cpp";
import { invalidRequest } from "../../errors.js";
import { checkTokenIds, type ModelFacts } from "./generation.js";
import { base64Vector, embeddingsBody } from "./openai-bodies.js";
import type { EmbeddingRequest } from "./request-params.js";

export interface EmbedderOptions {
  contextSize: number;
  threads: number;
}

export class Embedder {
  readonly #facts: ModelFacts;
  readonly #options: EmbedderOptions;
  #context: Promise<LlamaEmbeddingContext> | null = null;

  constructor(facts: ModelFacts, options: EmbedderOptions) {
    this.#facts = facts;
    this.#options = options;
  }

  #getContext(model: LlamaModel): Promise<LlamaEmbeddingContext> {
    if (this.#context === null) {
      const size = this.#options.contextSize;
      this.#context = model.createEmbeddingContext({
        contextSize: size,
        batchSize: size,
        threads: this.#options.threads,
      });
      // A failed creation is retried by the next request rather than cached.
      this.#context.catch(() => {
        this.#context = null;
      });
    }
    return this.#context;
  }

  /** Embeds every input; returns the OpenAI body. Throws the abort reason when `signal` fires. */
  async embed(modelName: string, request: EmbeddingRequest, signal: AbortSignal) {
    const model = this.#facts.model;
    const dims = model.embeddingVectorSize;
    if (request.dimensions !== null && request.dimensions !== dims) {
      throw invalidRequest(
        `This model's embeddings have ${dims} dimensions; omit 'dimensions' or pass ${dims}.`,
        "dimensions",
      );
    }
    const context = await this.#getContext(model);
    const vectors: Array<number[] | string> = [];
    let promptTokens = 0;
    for (const [i, input] of request.inputs.entries()) {
      signal.throwIfAborted();
      const param = request.inputs.length === 1 ? "input" : `input[${i}]`;
      if (input.kind === "tokens") checkTokenIds(this.#facts, input.tokens, param);
      else if (input.text === "") throw invalidRequest(`'${param}' must not be an empty string.`, param);
      const value = input.kind === "text" ? input.text : (input.tokens as Token[]);
      const length = context.calculateInputLength(value);
      if (length >= this.#options.contextSize) {
        throw invalidRequest(
          `'${param}' has ${length} tokens; this model embeds at most ${this.#options.contextSize - 1}.`,
          param,
          "context_length_exceeded",
        );
      }
      const { vector } = await context.getEmbeddingFor(value);
      vectors.push(request.encodingFormat === "base64" ? base64Vector(vector) : [...vector]);
      promptTokens += length;
    }
    return embeddingsBody(modelName, vectors, promptTokens);
  }

  async close(): Promise<void> {
    const context = this.#context;
    this.#context = null;
    if (context !== null) await (await context.catch(() => null))?.dispose();
  }
}
