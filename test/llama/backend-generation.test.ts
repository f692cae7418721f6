import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DemoFixture, errorOf, type OpenAiBody, startDemoBackend } from "./helpers.js";

let f: DemoFixture;
beforeAll(async () => {
  f = await startDemoBackend();
});
afterAll(async () => {
  await f?.close();
});

const CHAT = "/v1/chat/completions";
const COMPLETIONS = "/v1/completions";

/** Token count of a text under the demo model's tokenizer, BOS included (as the engine evaluates it). */
const promptTokens = (text: string, special = false) => f.vocab.tokenize(text, special).length + 1;

function expectConsistentUsage(body: OpenAiBody, maxTokens: number) {
  const choice = body.choices[0]!;
  expect(body.usage.completion_tokens).toBeGreaterThan(0);
  expect(body.usage.completion_tokens).toBeLessThanOrEqual(maxTokens);
  expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  // "length" means the cap was hit exactly; anything shorter ended on EOS or a stop sequence.
  if (choice.finish_reason === "length") expect(body.usage.completion_tokens).toBe(maxTokens);
  else expect(choice.finish_reason).toBe("stop");
}

describe("embedded engine: generation", () => {
  it("loads the model with the requested sequences as its concurrency cap", () => {
    expect(f.backend.name).toBe(`llama-cpp:${f.modelPath}`);
    expect(f.backend.maxConcurrency).toBe(4);
    expect(f.backend.info).toMatchObject({ sequences: 4, threads: 1, gpu: false });
    expect(f.backend.info.contextSize).toBeGreaterThanOrEqual(512);
  });

  it("answers chat completions through the model's chat template, with real usage", async () => {
    const result = await f.call(CHAT, {
      model: "demo",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hello there" },
      ],
      max_tokens: 8,
      temperature: 0,
    });
    expect(result).toMatchObject({ kind: "response", status: 200, retryAfterMs: null });
    if (result.kind !== "response") return;
    const body = JSON.parse(result.bodyText) as OpenAiBody & { id: string; created: number };
    expect(body.object).toBe("chat.completion");
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.model).toBe("demo");
    expect(body.choices[0]?.message?.role).toBe("assistant");
    expect(typeof body.choices[0]?.message?.content).toBe("string");
    const rendered =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n";
    expect(body.usage.prompt_tokens).toBe(promptTokens(rendered, true));
    expectConsistentUsage(body, 8);
    expect(result.usage).toEqual({
      inputTokens: body.usage.prompt_tokens,
      outputTokens: body.usage.completion_tokens,
      cachedTokens: 0,
      reasoningTokens: 0,
    });
  });

  it("answers text completions from text or token prompts, 16 tokens by default", async () => {
    const text = await f.ok(COMPLETIONS, { model: "demo", prompt: "The quick brown fox", temperature: 0 });
    expect(text.object).toBe("text_completion");
    expect(typeof text.choices[0]?.text).toBe("string");
    expect(text.usage.prompt_tokens).toBe(promptTokens("The quick brown fox"));
    expectConsistentUsage(text, 16);

    const tokens = f.vocab.tokenize("The quick brown fox");
    const fromTokens = await f.ok(COMPLETIONS, { model: "demo", prompt: tokens, max_tokens: 4, temperature: 0 });
    expect(fromTokens.usage.prompt_tokens).toBe(tokens.length + 1);
    // Same tokens, greedy: the same continuation.
    expect(text.choices[0]?.text?.startsWith(fromTokens.choices[0]?.text ?? "?")).toBe(true);
  });

  it("reuses a prompt prefix cached on the sequence and reports it as cached_tokens", async () => {
    const request = { model: "demo", messages: [{ role: "user", content: "same prompt twice" }], max_tokens: 2 };
    type Cached = OpenAiBody & { usage: { prompt_tokens_details: { cached_tokens: number } } };
    await f.ok<Cached>(CHAT, request);
    // Calls in sequence get the sequence just released, which still holds this prompt.
    const second = await f.ok<Cached>(CHAT, request);
    expect(second.usage.prompt_tokens_details.cached_tokens).toBe(second.usage.prompt_tokens - 1);
  });

  it("stops on a stop sequence and reports finish_reason stop", async () => {
    const prompt = { model: "demo", prompt: "Once upon a time", temperature: 0 };
    const free = await f.ok(COMPLETIONS, { ...prompt, max_tokens: 40 });
    const full = free.choices[0]?.text ?? "";
    // Greedy decoding is deterministic: stop on the first printable ASCII character it produced.
    const at = full.search(/[!-~]/);
    expect(at, `no ASCII character in ${JSON.stringify(full)}`).toBeGreaterThanOrEqual(0);
    const stopped = await f.ok(COMPLETIONS, { ...prompt, max_tokens: 40, stop: [full[at]!] });
    expect(stopped.choices[0]?.finish_reason).toBe("stop");
    expect(stopped.choices[0]?.text).toBe(full.slice(0, at));
    expect(stopped.usage.completion_tokens).toBeLessThan(40);
  });

  it("produces schema-valid JSON for json_schema and ends with finish_reason stop", async () => {
    const schema = {
      type: "object",
      properties: { ok: { type: "boolean" }, size: { enum: ["s", "m", "l"] } },
      required: ["ok", "size"],
      additionalProperties: false,
    };
    for (const seed of [1, 2, 3]) {
      const body = await f.ok(CHAT, {
        model: "demo",
        messages: [{ role: "user", content: "Give me JSON" }],
        max_tokens: 100,
        seed,
        response_format: { type: "json_schema", json_schema: { name: "answer", schema, strict: true } },
      });
      expect(body.choices[0]?.finish_reason).toBe("stop");
      const value = JSON.parse(body.choices[0]?.message?.content ?? "") as { ok: unknown; size: unknown };
      expect(typeof value.ok).toBe("boolean");
      expect(["s", "m", "l"]).toContain(value.size);
    }
  });

  it("constrains json_object output to JSON", async () => {
    let finished = 0;
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const body = await f.ok(CHAT, {
        model: "demo",
        messages: [{ role: "user", content: "JSON please" }],
        max_tokens: 64,
        seed,
        response_format: { type: "json_object" },
      });
      const choice = body.choices[0]!;
      // Random weights may wander into a long string and hit max_tokens; a finished answer must parse.
      if (choice.finish_reason === "stop") {
        finished++;
        expect(typeof JSON.parse(choice.message?.content ?? "")).toBe("object");
      } else expect(choice.message?.content?.trimStart().startsWith("{")).toBe(true);
    }
    expect(finished).toBeGreaterThan(0);
  });

  it("rejects a schema it cannot enforce with a per-request 400", async () => {
    const result = await f.call(CHAT, {
      model: "demo",
      messages: [{ role: "user", content: "x" }],
      response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "string", pattern: "^a+$" } } },
    });
    expect(errorOf(result)).toMatchObject({ status: 400, code: "unsupported_json_schema", param: "response_format" });
  });

  it("runs many concurrent calls across the parallel sequences", async () => {
    const calls = Array.from({ length: 12 }, (_, i) =>
      i % 2 === 0
        ? f.ok(CHAT, { model: "demo", messages: [{ role: "user", content: `question ${i}` }], max_tokens: 12, seed: i })
        : f.ok(COMPLETIONS, { model: "demo", prompt: `prompt ${i}`, max_tokens: 12, seed: i }),
    );
    const bodies = await Promise.all(calls);
    expect(bodies).toHaveLength(12);
    for (const body of bodies) expectConsistentUsage(body, 12);
  });

  it("honours logit_bias, and rejects unknown token ids instead of crashing", async () => {
    const forced = f.vocab.tokenize("z")[0]!;
    const body = await f.ok(COMPLETIONS, { model: "demo", prompt: "a", max_tokens: 5, logit_bias: { [forced]: 100 } });
    expect(body.choices[0]?.text).toBe("zzzzz");

    const badBias = await f.call(COMPLETIONS, { model: "demo", prompt: "a", logit_bias: { "99999": 1 } });
    expect(errorOf(badBias)).toMatchObject({ status: 400, param: "logit_bias" });
    const badPrompt = await f.call(COMPLETIONS, { model: "demo", prompt: [1, 99999] });
    expect(errorOf(badPrompt)).toMatchObject({ status: 400, param: "prompt" });
  });

  it("refuses prompts longer than the context, and clamps max_tokens to the room left", async () => {
    const long = await f.call(COMPLETIONS, { model: "demo", prompt: "x".repeat(f.backend.info.contextSize + 10) });
    expect(errorOf(long)).toMatchObject({ status: 400, code: "context_length_exceeded", param: "prompt" });

    const room = 3;
    const prompt = "y".repeat(f.backend.info.contextSize - 1 - room);
    const body = await f.ok(COMPLETIONS, { model: "demo", prompt, max_tokens: 50, logit_bias: { "124": 100 } });
    expect(body.usage.prompt_tokens).toBe(f.backend.info.contextSize - room);
    expect(body.usage.completion_tokens).toBe(room);
    expect(body.choices[0]?.finish_reason).toBe("length");
  });
});

describe("embedded engine: abort", () => {
  it("returns an aborted failure at once for an already-aborted signal", async () => {
    const controller = new AbortController();
    controller.abort();
    const result = await f.call(COMPLETIONS, { model: "demo", prompt: "x" }, controller.signal);
    expect(result).toMatchObject({ kind: "failure", code: "aborted", retryable: true });
  });

  it("stops running generations and frees their sequences", async () => {
    const forced = f.vocab.tokenize("q")[0]!;
    // A forced token never ends the text: each call would run to its max_tokens if not aborted.
    const long = { model: "demo", prompt: "go", max_tokens: 480, logit_bias: { [forced]: 100 } };
    const controller = new AbortController();
    const running = Array.from({ length: f.backend.maxConcurrency! }, () =>
      f.call(COMPLETIONS, long, controller.signal),
    );
    setTimeout(() => controller.abort(), 5);
    for (const result of await Promise.all(running)) {
      expect(result).toMatchObject({ kind: "failure", code: "aborted" });
    }
    // Every sequence is back in the pool: a full round of calls completes.
    const again = await Promise.all(
      Array.from({ length: f.backend.maxConcurrency! }, () =>
        f.ok(COMPLETIONS, { model: "demo", prompt: "go", max_tokens: 3 }),
      ),
    );
    expect(again).toHaveLength(f.backend.maxConcurrency!);
  });
});
