/**
 * Serves one inference request: parse → count the arrival → maybe inject a fault → queue a job on
 * the engine → answer when the engine finishes it. Transport-agnostic: the HTTP layer hands in a
 * `Reply` and renders thrown SluiceErrors.
 */
import { randomBytes } from "node:crypto";
import { SluiceError } from "../errors.js";
import { Engine, type EngineJob, type JobOutcome } from "./engine.js";
import { FaultInjector, type FaultKind } from "./faults.js";
import { hashJson, mixKeys, RunningHash, unitFloat } from "./hash.js";
import type { ResolvedSimOptions } from "./options.js";
import {
  type EmbeddingRequest,
  type GenerationRequest,
  type InferenceKind,
  parseInferenceRequest,
} from "./requests.js";
import {
  chatCompletionBody,
  completionBody,
  embeddingBody,
  embeddingVector,
  type FinishReason,
  modelsBody,
} from "./responses.js";
import { type SimStats, StatsRecorder } from "./stats.js";
import { countTokens, prefixBlockKeys, renderCompletionText } from "./tokenizer.js";

/** A 429 that tells the client when to come back (rendered as retry-after-ms and retry-after). */
export class RateLimitedError extends SluiceError {
  readonly retryAfterMs: number;

  constructor(message: string, retryAfterMs: number) {
    super("rate_limit_exceeded", message, { status: 429, type: "rate_limit_error" });
    this.retryAfterMs = retryAfterMs;
  }
}

/** What the simulator needs from a transport to answer one request. */
export interface Reply {
  json(status: number, body: unknown, headers?: Record<string, string>): void;
  /** Drops the connection with a TCP reset, without an answer. */
  reset(): void;
  /** Called once if the client goes away before an answer was sent. */
  onAbort(listener: () => void): void;
}

export class Simulator {
  readonly #opts: ResolvedSimOptions;
  readonly #now: () => number;
  readonly #engine: Engine;
  readonly #faults: FaultInjector;
  readonly #stats: StatsRecorder;
  readonly #idTag = randomBytes(4).toString("hex");
  readonly #created = Math.floor(Date.now() / 1000);
  #counter = 0;
  #hanging = 0;

  constructor(opts: ResolvedSimOptions, now: () => number = () => performance.now()) {
    this.#opts = opts;
    this.#now = now;
    this.#engine = new Engine({ ...opts, now });
    this.#faults = new FaultInjector(opts.faults, opts.seed);
    this.#stats = new StatsRecorder(opts);
  }

  models(): unknown {
    return modelsBody(this.#opts.model, this.#created);
  }

  stats(): SimStats {
    return this.#stats.snapshot({
      running: this.#engine.running,
      queued: this.#engine.queued,
      hanging: this.#hanging,
      maxQueueDepth: this.#engine.maxQueueDepth,
    });
  }

  /** Starts a new measurement window: zeroes the counters, empties the prefix cache, restarts faults. */
  reset(): void {
    this.#engine.reset();
    this.#faults.reset();
    this.#stats.reset();
  }

  stop(): void {
    this.#engine.stop();
  }

  /** Throws a SluiceError for an invalid request; otherwise answers through `reply`, now or later. */
  handle(kind: InferenceKind, body: unknown, reply: Reply): void {
    const req = parseInferenceRequest(kind, body);
    const key = hashJson(body, this.#opts.seed);
    this.#stats.arrival(this.#now());

    const fault = this.#faults.decide(key);
    if (fault !== undefined) {
      this.#injectFault(fault, reply);
      return;
    }
    const job = req.kind === "embeddings" ? this.#embeddingJob(req, reply) : this.#generationJob(req, key, reply);
    const submitted = this.#engine.submit(job);
    if (!submitted.accepted) {
      this.#stats.queueFull();
      throw new RateLimitedError("The simulator's waiting queue is full.", submitted.retryAfterMs);
    }
    reply.onAbort(submitted.cancel);
  }

  #injectFault(fault: FaultKind, reply: Reply): void {
    this.#stats.fault(fault);
    switch (fault) {
      case "error500":
        throw new SluiceError("server_error", "Injected fault: internal server error.", { status: 500 });
      case "error429":
        throw new RateLimitedError("Injected fault: rate limited.", this.#opts.faults.retryAfterMs);
      case "reset":
        reply.reset();
        return;
      case "hang":
        // Never answer: the request stays open until the client gives up (or close()).
        this.#hanging++;
        reply.onAbort(() => this.#hanging--);
    }
  }

  #generationJob(req: GenerationRequest, key: number, reply: Reply): EngineJob {
    const { completionTokens, finishReason } = this.#completionLength(key, req.maxTokens);
    const render = req.kind === "chat" ? chatCompletionBody : completionBody;
    const prefix = req.kind === "chat" ? "chatcmpl" : "cmpl";
    const promptTokens = countTokens(req.prompt.length);
    const keys = this.#opts.cacheBlocks > 0 ? prefixBlockKeys(req.prompt, this.#opts.blockSize) : [];
    const job: EngineJob = {
      promptTokens,
      keys,
      completionTokens,
      onDone: (o) => {
        this.#served(req.kind, job, o);
        reply.json(
          200,
          render({
            id: this.#nextId(prefix),
            created: Math.floor(Date.now() / 1000),
            model: req.model,
            text: renderCompletionText(completionTokens, mixKeys(key, 2)),
            finishReason,
            promptTokens,
            completionTokens,
            cachedTokens: o.cachedTokens,
          }),
        );
      },
    };
    return job;
  }

  #embeddingJob(req: EmbeddingRequest, reply: Reply): EngineJob {
    const promptTokens = req.inputs.reduce((n, input) => n + countTokens(input.length), 0);
    const job: EngineJob = {
      promptTokens,
      keys: [],
      completionTokens: 0,
      onDone: (o) => {
        this.#served("embeddings", job, o);
        const vectors = req.inputs.map((input) =>
          embeddingVector(new RunningHash(this.#opts.seed).updateBytes(input).snapshot(), req.dimensions),
        );
        reply.json(200, embeddingBody(req.model, vectors, req.encoding, promptTokens));
      },
    };
    return job;
  }

  // max_tokens when given (capped), else a deterministic length in [minOut, maxOut] (capped).
  #completionLength(
    key: number,
    maxTokens: number | undefined,
  ): { completionTokens: number; finishReason: FinishReason } {
    const { minOut, maxOut, maxTokensCap } = this.#opts;
    const wanted = maxTokens ?? minOut + Math.floor(unitFloat(mixKeys(key, 1)) * (maxOut - minOut + 1));
    const completionTokens = Math.min(wanted, maxTokensCap);
    const finishReason = maxTokens !== undefined || wanted > maxTokensCap ? "length" : "stop";
    return { completionTokens, finishReason };
  }

  #served(kind: InferenceKind, job: EngineJob, o: JobOutcome): void {
    // Jobs submitted before a reset belong to the previous window.
    if (o.epoch !== this.#engine.epoch) return;
    this.#stats.served({
      kind,
      ...o,
      promptTokens: job.promptTokens,
      completionTokens: job.completionTokens,
      keys: job.keys,
    });
  }

  #nextId(prefix: string): string {
    return `${prefix}-${this.#idTag}${(this.#counter++).toString(36)}`;
  }
}
