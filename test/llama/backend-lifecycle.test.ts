import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLlamaCppBackend } from "../../src/backends/llama-cpp/index.js";
import { DEMO_MODEL_FILE } from "../../src/demo-model/demo-model.js";
import { SluiceError } from "../../src/errors.js";
import { type DemoFixture, errorOf, startDemoBackend } from "./helpers.js";

let f: DemoFixture;
beforeAll(async () => {
  f = await startDemoBackend({ parallel: 2 });
});
afterAll(async () => {
  await f?.close();
});

const EMBEDDINGS = "/v1/embeddings";

interface EmbeddingsBody {
  object: string;
  model: string;
  data: Array<{ object: string; index: number; embedding: number[] | string }>;
  usage: { prompt_tokens: number; total_tokens: number };
}

describe("embedded engine: embeddings", () => {
  it("returns one vector per input with real token usage", async () => {
    const inputs = ["hello", "a longer sentence to embed"];
    const result = await f.call(EMBEDDINGS, { model: "demo", input: inputs });
    if (result.kind !== "response") throw new Error(JSON.stringify(result));
    const body = JSON.parse(result.bodyText) as EmbeddingsBody;
    expect(body.object).toBe("list");
    expect(body.data.map((d) => [d.object, d.index])).toEqual([
      ["embedding", 0],
      ["embedding", 1],
    ]);
    for (const d of body.data) {
      expect(d.embedding).toHaveLength(128);
      expect((d.embedding as number[]).every(Number.isFinite)).toBe(true);
    }
    const expected = inputs.reduce((n, s) => n + f.vocab.tokenize(s).length + 1, 0);
    expect(body.usage).toEqual({ prompt_tokens: expected, total_tokens: expected });
    expect(result.usage).toMatchObject({ inputTokens: expected, outputTokens: 0 });
  });

  it("encodes base64 as little-endian float32 of the same vector", async () => {
    const floats = await f.ok<EmbeddingsBody>(EMBEDDINGS, { model: "demo", input: "same text" });
    const b64 = await f.ok<EmbeddingsBody>(EMBEDDINGS, {
      model: "demo",
      input: "same text",
      encoding_format: "base64",
    });
    const bytes = Buffer.from(b64.data[0]?.embedding as string, "base64");
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    expect(decoded).toEqual((floats.data[0]!.embedding as number[]).map((x) => Math.fround(x)));
  });

  it("accepts token-id input and rejects unknown ids, empty input and other dimensions", async () => {
    const ids = f.vocab.tokenize("tokens");
    const body = await f.ok<EmbeddingsBody>(EMBEDDINGS, { model: "demo", input: ids });
    expect(body.usage.prompt_tokens).toBe(ids.length + 1);
    expect(errorOf(await f.call(EMBEDDINGS, { model: "demo", input: [1, 100000] }))).toMatchObject({ status: 400 });
    expect(errorOf(await f.call(EMBEDDINGS, { model: "demo", input: "" }))).toMatchObject({
      status: 400,
      param: "input",
    });
    expect(errorOf(await f.call(EMBEDDINGS, { model: "demo", input: "x", dimensions: 64 }))).toMatchObject({
      status: 400,
      param: "dimensions",
    });
  });
});

describe("embedded engine: request errors", () => {
  it("answers bad requests with a 400 OpenAI error envelope", async () => {
    const invalidJson = await f.backend.call({
      endpoint: "/v1/completions",
      body: "{not json",
      model: "demo",
      signal: new AbortController().signal,
    });
    expect(errorOf(invalidJson)).toMatchObject({ status: 400, code: "invalid_json" });
    expect(errorOf(await f.call("/v1/responses", { model: "demo", input: "x" }))).toMatchObject({
      status: 400,
      code: "unsupported_endpoint",
    });
    expect(
      errorOf(
        await f.call("/v1/chat/completions", { model: "demo", messages: [{ role: "user", content: "x" }], n: 3 }),
      ),
    ).toMatchObject({
      status: 400,
      code: "unsupported_parameter",
      param: "n",
    });
    expect(errorOf(await f.call("/v1/completions", { model: "demo", prompt: "x", max_tokens: 0 }))).toMatchObject({
      status: 400,
      param: "max_tokens",
    });
  });
});

describe("embedded engine: lifecycle", () => {
  it("names a missing model path in a typed error", async () => {
    const missing = join(f.dir, "no-such-model.gguf");
    const err = await createLlamaCppBackend({ model: missing, threads: 1, gpu: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceError);
    expect(err).toMatchObject({ code: "model_not_found", status: 400 });
    expect((err as Error).message).toContain(missing);
  });

  it("rejects invalid engine options before loading anything", async () => {
    for (const bad of [{ parallel: 0 }, { threads: 1.5 }, { contextSize: -1 }]) {
      const err = await createLlamaCppBackend({ model: f.modelPath, gpu: false, ...bad }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "invalid_option", param: Object.keys(bad)[0] });
    }
  });

  it("reports a file that is not a model with a typed error naming it", async () => {
    const junk = join(f.dir, "junk.gguf");
    await writeFile(junk, "this is not a GGUF file");
    const err = await createLlamaCppBackend({ model: junk, threads: 1, gpu: false }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "model_load_failed" });
    expect((err as Error).message).toContain(junk);
  });

  it("serves `demo` from the cache folder, and closes idempotently", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "sluice-demo-cache-"));
    try {
      const backend = await createLlamaCppBackend({
        model: "demo",
        cacheDir,
        threads: 1,
        parallel: 1,
        contextSize: 256,
        gpu: false,
      });
      expect(backend.name).toBe("llama-cpp:demo");
      expect(backend.info.modelPath).toBe(join(cacheDir, DEMO_MODEL_FILE));
      const ok = await backend.call({
        endpoint: "/v1/completions",
        body: JSON.stringify({ model: "demo", prompt: "hi", max_tokens: 2 }),
        model: "demo",
        signal: new AbortController().signal,
      });
      expect(ok).toMatchObject({ kind: "response", status: 200 });
      await Promise.all([backend.close(), backend.close()]);
      await backend.close();
      const after = await backend.call({
        endpoint: "/v1/completions",
        body: JSON.stringify({ model: "demo", prompt: "hi" }),
        model: "demo",
        signal: new AbortController().signal,
      });
      expect(after).toMatchObject({ kind: "failure", code: "backend_closed", retryable: true });
    } finally {
      await rm(cacheDir, { recursive: true, force: true });
    }
  });

  it("aborts in-flight calls when closed, then releases everything", async () => {
    const g = await startDemoBackend({ parallel: 1 });
    const forced = g.vocab.tokenize("w")[0]!;
    const running = g.call("/v1/completions", {
      model: "demo",
      prompt: "go",
      max_tokens: 400,
      logit_bias: { [forced]: 100 },
    });
    await g.close();
    expect(await running).toMatchObject({ kind: "failure", code: "backend_closed" });
  });
});
