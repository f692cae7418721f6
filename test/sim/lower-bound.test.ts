import { describe, expect, it } from "vitest";
import { type SimOptions, startSimulator } from "../../src/sim/index.js";
import { LowerBound } from "../../src/sim/lower-bound.js";
import { chatBody, getJson, postJson, type Usage } from "./helpers.js";

describe("LowerBound", () => {
  const costs = { slots: 2, stepMs: 10, prefillMsPerToken: 1, blockSize: 4 };

  it("counts each distinct block once and divides the work by the slots", () => {
    const lb = new LowerBound(costs);
    // 13 prompt tokens, 3 cacheable blocks (keys 1,2,3) → 1 tail token; 5 completion tokens.
    lb.add({ promptTokens: 13, completionTokens: 5, keys: [1, 2, 3] });
    lb.add({ promptTokens: 13, completionTokens: 5, keys: [1, 2, 3] });
    lb.add({ promptTokens: 9, completionTokens: 1, keys: [1, 7] });
    const s = lb.snapshot();
    expect(s.distinctBlocks).toBe(4);
    expect(s.decodeMs).toBe(110);
    expect(s.prefillMs).toBe(1 + 1 + 1 + 4 * 4);
    expect(s.longestRequestMs).toBe(51);
    expect(s.lowerBoundMs).toBe((110 + 19) / 2);
  });

  it("is at least the longest single request", () => {
    const lb = new LowerBound({ ...costs, slots: 100 });
    lb.add({ promptTokens: 3, completionTokens: 50, keys: [] });
    lb.add({ promptTokens: 3, completionTokens: 1, keys: [] });
    expect(lb.snapshot().lowerBoundMs).toBe(503);
  });
});

async function drive(options: SimOptions, concurrency: number, bodies: Record<string, unknown>[]) {
  const sim = await startSimulator(options);
  try {
    let next = 0;
    const worker = async () => {
      while (next < bodies.length) {
        const body = bodies[next++] as Record<string, unknown>;
        const r = await postJson(sim.url, "/v1/chat/completions", body);
        expect(r.status).toBe(200);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return sim.stats();
  } finally {
    await sim.close();
  }
}

describe("GET /stats", () => {
  const shared = "s".repeat(1500);
  const bodies = Array.from({ length: 40 }, (_, i) =>
    chatBody(i % 3 === 0 ? `${shared}${i}` : shared, `user ${i} ${"u".repeat(i * 7)}`, 1 + ((i * 37) % 9)),
  );
  const base: SimOptions = { stepMs: 1, prefillMsPerToken: 0.01, blockSize: 8, cacheBlocks: 64 };

  for (const [slots, concurrency] of [
    [1, 1],
    [4, 4],
    [4, 16],
    [8, 3],
  ] as const) {
    it(`never reports a lower bound above the actual makespan (slots ${slots}, client concurrency ${concurrency})`, async () => {
      const stats = await drive({ ...base, slots }, concurrency, bodies);
      expect(stats.requestsServed).toBe(40);
      expect(stats.lowerBoundMs).toBeGreaterThan(0);
      expect(stats.lowerBoundMs).toBeLessThanOrEqual(stats.makespanMs);
      expect(stats.efficiency).toBeLessThanOrEqual(1);
      // Each served request held a slot at least as long as its minimal service time.
      expect(stats.busySlotMs).toBeGreaterThanOrEqual(stats.lowerBound.totalWorkMs);
      expect(stats.utilization).toBeLessThanOrEqual(1 + 1e-9);
    });
  }

  it("reports tokens and cache counters, and POST /stats/reset starts a cold window", async () => {
    const sim = await startSimulator({ ...base, slots: 2 });
    try {
      const body = chatBody(shared, "same question", 3);
      const first = await postJson(sim.url, "/v1/chat/completions", body);
      const second = await postJson(sim.url, "/v1/chat/completions", body);
      expect((first.body["usage"] as Usage).prompt_tokens_details.cached_tokens).toBe(0);
      const cached = (second.body["usage"] as Usage).prompt_tokens_details.cached_tokens;
      expect(cached).toBeGreaterThan(300);

      const stats = (await getJson(sim.url, "/stats")).body;
      const prompt = (first.body["usage"] as Usage).prompt_tokens;
      expect(stats).toMatchObject({
        requestsServed: 2,
        promptTokens: 2 * prompt,
        cachedTokens: cached,
        completionTokens: 6,
        cacheHits: cached / 8,
        servedByEndpoint: { chat: 2, completions: 0, embeddings: 0 },
        faults: { error500: 0, error429: 0, reset: 0, hang: 0 },
      });
      expect(stats["lowerBound"]).toMatchObject({ distinctBlocks: cached / 8, exact: true });

      const reset = await postJson(sim.url, "/stats/reset", {});
      expect(reset.status).toBe(200);
      expect(reset.body).toMatchObject({ requestsServed: 0, promptTokens: 0, makespanMs: 0, lowerBoundMs: 0 });
      const third = await postJson(sim.url, "/v1/chat/completions", body);
      expect((third.body["usage"] as Usage).prompt_tokens_details.cached_tokens).toBe(0);
      expect(sim.stats().requestsServed).toBe(1);
    } finally {
      await sim.close();
    }
  });
});
