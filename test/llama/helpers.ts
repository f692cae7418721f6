/** Shared fixtures for the embedded-engine tests: a generated demo model, a backend, a tokenizer. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type LlamaModel } from "node-llama-cpp";
import { expect } from "vitest";
import type { BackendResult } from "../../src/backends/backend.js";
import {
  createLlamaCppBackend,
  type LlamaCppBackend,
  type LlamaCppBackendOptions,
} from "../../src/backends/llama-cpp/index.js";
import { writeDemoModel } from "../../src/demo-model/demo-model.js";

export interface DemoFixture {
  dir: string;
  modelPath: string;
  backend: LlamaCppBackend;
  /** The same model loaded vocabulary-only, to count tokens independently of the backend. */
  vocab: LlamaModel;
  call(endpoint: string, body: object, signal?: AbortSignal): Promise<BackendResult>;
  /** Calls and expects a 200; returns the parsed body. */
  ok<T = OpenAiBody>(endpoint: string, body: object): Promise<T>;
  close(): Promise<void>;
}

export interface OpenAiBody {
  object: string;
  model: string;
  choices: Array<{
    index: number;
    finish_reason: "stop" | "length";
    text?: string;
    message?: { role: string; content: string };
  }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** 1 thread (the test machines are shared), a small context, a few sequences. */
export async function startDemoBackend(overrides: Partial<LlamaCppBackendOptions> = {}): Promise<DemoFixture> {
  const dir = await mkdtemp(join(tmpdir(), "sluice-llama-"));
  const modelPath = await writeDemoModel(join(dir, "demo.gguf"));
  const backend = await createLlamaCppBackend({
    model: modelPath,
    cacheDir: join(dir, "cache"),
    threads: 1,
    parallel: 4,
    contextSize: 512,
    gpu: false,
    ...overrides,
  });
  const llama = await getLlama({ gpu: false, build: "never" });
  const vocab = await llama.loadModel({ modelPath, vocabOnly: true });
  const call = (endpoint: string, body: object, signal = new AbortController().signal) =>
    backend.call({ endpoint, body: JSON.stringify(body), model: "demo", signal });
  return {
    dir,
    modelPath,
    backend,
    vocab,
    call,
    async ok<T>(endpoint: string, body: object): Promise<T> {
      const result = await call(endpoint, body);
      if (result.kind !== "response" || result.status !== 200) {
        expect.fail(`expected a 200 response, got ${JSON.stringify(result)}`);
      }
      return JSON.parse(result.bodyText) as T;
    },
    async close() {
      await backend.close();
      await llama.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The error envelope of a non-200 response. */
export function errorOf(result: BackendResult): {
  status: number;
  code: string | null;
  param: string | null;
  message: string;
} {
  if (result.kind !== "response") throw new Error(`expected a response, got ${JSON.stringify(result)}`);
  const { error } = JSON.parse(result.bodyText) as {
    error: { code: string | null; param: string | null; message: string };
  };
  return { status: result.status, ...error };
}
