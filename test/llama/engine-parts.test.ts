import { describe, expect, it } from "vitest";
import { normalize } from "../../src/backends/llama-cpp/json-schema.js";
import { defaultThreads, planSequences } from "../../src/backends/llama-cpp/parallelism.js";
import {
  parseChatRequest,
  parseCompletionRequest,
  parseEmbeddingRequest,
} from "../../src/backends/llama-cpp/request-params.js";
import { SequencePool } from "../../src/backends/llama-cpp/sequence-pool.js";
import { SluiceError } from "../../src/errors.js";

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return err instanceof SluiceError ? `${err.status} ${err.code}` : "untyped";
  }
  return undefined;
};

describe("parallelism defaults", () => {
  it("leaves one core free, never below one thread", () => {
    expect(defaultThreads(1)).toBe(1);
    expect(defaultThreads(2)).toBe(1);
    expect(defaultThreads(16)).toBe(15);
  });

  it("fits sequences into half the free memory, within [1, cap]", () => {
    const MB = 1024 * 1024;
    expect(planSequences({ perSequenceBytes: 100 * MB, fixedBytes: 0, freeBytes: 2000 * MB })).toBe(10);
    expect(planSequences({ perSequenceBytes: 100 * MB, fixedBytes: 500 * MB, freeBytes: 2000 * MB })).toBe(5);
    expect(planSequences({ perSequenceBytes: 1 * MB, fixedBytes: 0, freeBytes: 64_000 * MB })).toBe(32);
    expect(planSequences({ perSequenceBytes: 1 * MB, fixedBytes: 0, freeBytes: 64_000 * MB, cap: 8 })).toBe(8);
    expect(planSequences({ perSequenceBytes: 4000 * MB, fixedBytes: 0, freeBytes: 1000 * MB })).toBe(1);
  });
});

describe("SequencePool", () => {
  it("hands items out FIFO to waiters and drops aborted waiters", async () => {
    const pool = new SequencePool(["a"]);
    const first = await pool.acquire();
    const controller = new AbortController();
    const aborted = pool.acquire(controller.signal);
    const second = pool.acquire();
    controller.abort(new Error("gone"));
    await expect(aborted).rejects.toThrow("gone");
    pool.release(first);
    expect(await second).toBe("a");
  });

  it("fails waiters and later acquires once closed", async () => {
    const pool = new SequencePool(["a"]);
    await pool.acquire();
    const waiting = pool.acquire();
    pool.close(new Error("closed"));
    await expect(waiting).rejects.toThrow("closed");
    await expect(pool.acquire()).rejects.toThrow("closed");
  });
});

describe("request parsing", () => {
  const chat = (extra: object) => ({ model: "m", messages: [{ role: "user", content: "hi" }], ...extra });

  it("applies OpenAI defaults", () => {
    const r = parseChatRequest(chat({}));
    expect(r.sampling).toMatchObject({ maxTokens: null, temperature: 1, topP: 1, stop: [], seed: undefined });
    expect(r.messages).toEqual([{ role: "user", text: "hi" }]);
    expect(parseChatRequest(chat({ max_completion_tokens: 5, max_tokens: 9 })).sampling.maxTokens).toBe(5);
    expect(parseChatRequest(chat({ stop: "x", seed: -1 })).sampling).toMatchObject({ stop: ["x"], seed: 0xffffffff });
  });

  it("joins text parts, maps developer to system", () => {
    const r = parseChatRequest({
      messages: [
        { role: "developer", content: "d" },
        {
          role: "user",
          content: [
            { type: "text", text: "a" },
            { type: "text", text: "b" },
          ],
        },
      ],
    });
    expect(r.messages).toEqual([
      { role: "system", text: "d" },
      { role: "user", text: "ab" },
    ]);
  });

  it("rejects what the engine cannot honour, naming the parameter", () => {
    expect(codeOf(() => parseChatRequest(chat({ n: 2 })))).toBe("400 unsupported_parameter");
    expect(codeOf(() => parseChatRequest(chat({ stream: true })))).toBe("400 unsupported_parameter");
    expect(codeOf(() => parseChatRequest(chat({ tools: [{ type: "function" }] })))).toBe("400 unsupported_parameter");
    expect(codeOf(() => parseChatRequest(chat({ temperature: 3 })))).toBe("400 invalid_request");
    expect(codeOf(() => parseChatRequest({ messages: [{ role: "user", content: [{ type: "image_url" }] }] }))).toBe(
      "400 unsupported_parameter",
    );
    expect(codeOf(() => parseCompletionRequest({ prompt: ["a", "b"] }))).toBe("400 unsupported_parameter");
    expect(codeOf(() => parseCompletionRequest({ prompt: "a", echo: true }))).toBe("400 unsupported_parameter");
  });

  it("accepts every prompt and input form", () => {
    expect(parseCompletionRequest({ prompt: "a" }).prompt).toEqual({ kind: "text", text: "a" });
    expect(parseCompletionRequest({ prompt: ["a"] }).prompt).toEqual({ kind: "text", text: "a" });
    expect(parseCompletionRequest({ prompt: [1, 2] }).prompt).toEqual({ kind: "tokens", tokens: [1, 2] });
    expect(parseCompletionRequest({ prompt: [[3]] }).prompt).toEqual({ kind: "tokens", tokens: [3] });
    expect(parseEmbeddingRequest({ input: "a" }).inputs).toEqual([{ kind: "text", text: "a" }]);
    expect(parseEmbeddingRequest({ input: [5, 6] }).inputs).toEqual([{ kind: "tokens", tokens: [5, 6] }]);
    expect(parseEmbeddingRequest({ input: ["a", "b"], encoding_format: "base64" })).toMatchObject({
      inputs: [
        { kind: "text", text: "a" },
        { kind: "text", text: "b" },
      ],
      encodingFormat: "base64",
    });
  });
});

describe("JSON schema normalisation", () => {
  it("rewrites the supported subset into node-llama-cpp's dialect", () => {
    expect(
      normalize({
        title: "T",
        type: "object",
        properties: {
          a: { anyOf: [{ type: "string" }, { type: "null" }] },
          b: { $ref: "#/definitions/B" },
          c: { type: ["object", "null"], properties: { x: { type: "integer" } } },
          d: { items: [{ type: "boolean" }] },
        },
        required: ["a"],
        additionalProperties: false,
        definitions: { B: { enum: ["x", "y"] } },
      }),
    ).toEqual({
      type: "object",
      properties: {
        a: { oneOf: [{ type: "string" }, { type: "null" }] },
        b: { $ref: "#/$defs/B" },
        c: { oneOf: [{ type: "object", properties: { x: { type: "integer" } } }, { type: "null" }] },
        d: { type: "array", prefixItems: [{ type: "boolean" }] },
      },
      additionalProperties: false,
      $defs: { B: { enum: ["x", "y"] } },
    });
  });

  it("refuses keywords it cannot enforce, naming where", () => {
    const message = (schema: unknown) => {
      try {
        normalize(schema);
      } catch (err) {
        return (err as SluiceError).code === "unsupported_json_schema" ? (err as Error).message : "wrong code";
      }
      return "accepted";
    };
    expect(message({ type: "string", pattern: "^a" })).toContain("schema.pattern");
    expect(message({ type: "object", properties: { n: { type: "number", minimum: 1 } } })).toContain(
      "schema.properties.n.minimum",
    );
    expect(message({ allOf: [] })).toContain("allOf");
    expect(message({ $ref: "#" })).toContain("$ref");
    expect(message({ type: "string", format: "email" })).toContain("email");
  });
});
