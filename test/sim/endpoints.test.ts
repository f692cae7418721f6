import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningSimulator, startSimulator } from "../../src/sim/index.js";
import { chatBody, getJson, postJson, type Usage } from "./helpers.js";

let sim: RunningSimulator;
let client: OpenAI;

beforeAll(async () => {
  sim = await startSimulator({ zeroCost: true, minOut: 5, maxOut: 40, maxTokensCap: 64 });
  client = new OpenAI({ baseURL: `${sim.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
afterAll(() => sim.close());

describe("OpenAI endpoints", () => {
  it("answers chat completions deterministically, in OpenAI's shape", async () => {
    const messages = [
      { role: "system" as const, content: "be terse" },
      { role: "user" as const, content: "hello there" },
    ];
    const a = await client.chat.completions.create({ model: "any-model", messages });
    const b = await client.chat.completions.create({ model: "any-model", messages });
    expect(a.object).toBe("chat.completion");
    expect(a.model).toBe("any-model");
    expect(a.id).toMatch(/^chatcmpl-/);
    expect(a.id).not.toBe(b.id);
    const choice = a.choices[0];
    expect(choice?.message.role).toBe("assistant");
    expect(choice?.finish_reason).toBe("stop");
    expect(b.choices[0]?.message.content).toBe(choice?.message.content);
    const usage = a.usage;
    expect(usage?.completion_tokens).toBeGreaterThanOrEqual(5);
    expect(usage?.completion_tokens).toBeLessThanOrEqual(40);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
    expect(usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    expect(b.usage?.completion_tokens).toBe(usage?.completion_tokens);
    // One token per 4 bytes: the generated text is exactly completion_tokens long under that rule.
    expect(Math.ceil(Buffer.byteLength(choice?.message.content ?? "") / 4)).toBe(usage?.completion_tokens);
  });

  it("uses max_tokens (capped) and reports finish_reason length", async () => {
    const r = await postJson(sim.url, "/v1/chat/completions", chatBody("s", "u", 7));
    expect(r.status).toBe(200);
    expect(typeof r.headers["x-request-id"]).toBe("string");
    const usage = r.body["usage"] as Usage;
    expect(usage.completion_tokens).toBe(7);
    expect((r.body["choices"] as { finish_reason: string }[])[0]?.finish_reason).toBe("length");
    const capped = await postJson(sim.url, "/v1/chat/completions", chatBody("s", "u", 1000));
    expect((capped.body["usage"] as Usage).completion_tokens).toBe(64);
  });

  it("ignores key order and whitespace when deriving outputs", async () => {
    const a = await postJson(sim.url, "/v1/completions", { model: "m", prompt: "abc", max_tokens: 9 });
    const b = await postJson(sim.url, "/v1/completions", { max_tokens: 9, prompt: "abc", model: "m" });
    const text = (r: typeof a) => (r.body["choices"] as { text: string }[])[0]?.text;
    expect(a.body["object"]).toBe("text_completion");
    expect(text(a)).toBe(text(b));
    expect(text(a)?.length).toBeGreaterThan(0);
  });

  it("serves embeddings (float and the SDK's default base64), deterministic and unit-length", async () => {
    const res = await client.embeddings.create({ model: "emb", input: ["one", "two"] });
    expect(res.object).toBe("list");
    expect(res.data).toHaveLength(2);
    expect(res.data[0]?.embedding).toHaveLength(64);
    const raw = await postJson(sim.url, "/v1/embeddings", { model: "emb", input: "one", dimensions: 8 });
    const vec = (raw.body["data"] as { embedding: number[] }[])[0]?.embedding ?? [];
    expect(vec).toHaveLength(8);
    expect(Math.hypot(...vec)).toBeCloseTo(1, 5);
    expect(raw.body["usage"]).toEqual({ prompt_tokens: 1, total_tokens: 1 });
    const again = await client.embeddings.create({ model: "emb", input: "one" });
    const same = await client.embeddings.create({ model: "emb", input: ["one", "two"] });
    expect(again.data[0]?.embedding).toEqual(res.data[0]?.embedding);
    expect(same.data[1]?.embedding).toEqual(res.data[1]?.embedding);
  });

  it("rejects stream:true with a 400 in the OpenAI error envelope", async () => {
    const r = await postJson(sim.url, "/v1/chat/completions", { ...chatBody("s", "u"), stream: true });
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      error: {
        message: expect.any(String),
        type: "invalid_request_error",
        param: "stream",
        code: "unsupported_parameter",
      },
    });
    await expect(
      client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "x" }], stream: true }),
    ).rejects.toMatchObject({ status: 400 });
  });

  it("rejects malformed requests and unknown URLs with envelopes", async () => {
    expect((await postJson(sim.url, "/v1/chat/completions", { model: "m" })).status).toBe(400);
    expect((await postJson(sim.url, "/v1/chat/completions", { messages: [] })).body).toMatchObject({
      error: { param: "model" },
    });
    expect((await postJson(sim.url, "/v1/nope", {})).status).toBe(404);
    expect((await postJson(sim.url, "/v1/completions", { model: "m", prompt: [1, 2] })).body).toMatchObject({
      error: { param: "prompt", type: "invalid_request_error" },
    });
    expect((await postJson(sim.url, "/v1/chat/completions", { ...chatBody("s", "u"), n: 2 })).status).toBe(400);
    expect((await postJson(sim.url, "/v1/chat/completions", { ...chatBody("s", "u"), max_tokens: 0 })).status).toBe(
      400,
    );
  });

  it("lists the model and answers health checks", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["sluice-sim"]);
    expect((await getJson(sim.url, "/health")).body).toEqual({ status: "ok" });
  });
});
