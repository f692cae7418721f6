import { afterEach, describe, expect, it } from "vitest";
import { type RunningSimulator, startSimulator } from "../../src/sim/index.js";
import { chatBody, postJson, waitFor } from "./helpers.js";

let sim: RunningSimulator | undefined;
afterEach(() => sim?.close());

describe("waiting queue", () => {
  it("answers 429 with retry-after headers once the queue limit is exceeded", async () => {
    // One slot busy for ~10 s, queue limit 1: state is driven by polling /stats, not by timing.
    sim = await startSimulator({ slots: 1, maxQueue: 1, stepMs: 100, prefillMsPerToken: 0 });
    const s = sim;
    const abort = new AbortController();
    const running = postJson(s.url, "/v1/chat/completions", chatBody("a", "1", 100), abort.signal).catch(() => null);
    await waitFor(() => s.stats().running === 1);
    const queued = postJson(s.url, "/v1/chat/completions", chatBody("a", "2", 100), abort.signal).catch(() => null);
    await waitFor(() => s.stats().queued === 1);

    const rejected = await postJson(s.url, "/v1/chat/completions", chatBody("a", "3", 1));
    expect(rejected.status).toBe(429);
    expect(rejected.body).toMatchObject({ error: { type: "rate_limit_error", code: "rate_limit_exceeded" } });
    const ms = Number(rejected.headers["retry-after-ms"]);
    expect(ms).toBeGreaterThan(0);
    expect(ms).toBeLessThanOrEqual(10_000);
    expect(Number(rejected.headers["retry-after"])).toBe(Math.ceil(ms / 1000));

    const stats = s.stats();
    expect(stats.queueFull429).toBe(1);
    expect(stats.maxQueueDepth).toBe(1);
    expect(stats.requestsServed).toBe(0);

    // Clients that give up free their slot and queue place.
    abort.abort();
    await Promise.all([running, queued]);
    await waitFor(() => s.stats().running === 0 && s.stats().queued === 0);
  });

  it("queues without limit by default and serves everything", async () => {
    sim = await startSimulator({ slots: 2, stepMs: 1, prefillMsPerToken: 0 });
    const s = sim;
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => postJson(s.url, "/v1/chat/completions", chatBody("q", `${i}`, 3))),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const stats = s.stats();
    expect(stats.requestsServed).toBe(12);
    expect(stats.completionTokens).toBe(36);
    expect(stats.queueFull429).toBe(0);
    expect(stats.makespanMs).toBeGreaterThanOrEqual(stats.lowerBoundMs);
  });
});
