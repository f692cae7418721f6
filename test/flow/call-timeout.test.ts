/**
 * The learned call timeout: nothing learned before MIN_SAMPLES answers (the configured timeout
 * applies), then 4 × the p99 latency per token × the call's tokens, never under the floor, doubled
 * per attempt up to a cap; and `maxTokensOf`, which reads a body's token limit without parsing it.
 */
import { describe, expect, it } from "vitest";
import { CALL_TIMEOUT_FLOOR_MS, CallTimeout, maxTokensOf } from "../../src/flow/call-timeout.js";

/** A timeout that has seen `n` answers of `latencyMs` producing `tokens` tokens each. */
function learned(n: number, latencyMs: number, tokens: number): CallTimeout {
  const t = new CallTimeout();
  for (let i = 0; i < n; i++) t.observe(latencyMs, tokens);
  return t;
}

describe("CallTimeout", () => {
  it("learns nothing before 20 answers: the configured timeout applies", () => {
    const t = learned(19, 1_000, 99);
    expect(t.budget(100, 1)).toBeUndefined();
    expect(t.budget(undefined, 3)).toBeUndefined();
    t.observe(1_000, 99);
    expect(t.budget(100, 1)).toBeDefined();
  });

  it("never gives a budget under the floor, however fast the answers", () => {
    const t = learned(20, 1, 0);
    expect(t.budget(1, 1)).toBe(CALL_TIMEOUT_FLOOR_MS);
    expect(t.budget(undefined, 1)).toBe(CALL_TIMEOUT_FLOOR_MS);
  });

  it("scales with the call's max_tokens: 4 × p99 per-token latency × (1 + tokens)", () => {
    const t = learned(20, 1_000, 99); // 10 ms a token
    expect(t.budget(999, 1)).toBe(4 * 10 * 1_000);
    expect(t.budget(4_999, 1)).toBe(4 * 10 * 5_000);
    // No max_tokens in the body: twice the most tokens any answer produced.
    expect(t.budget(undefined, 1)).toBe(4 * 10 * (1 + 2 * 99));
  });

  it("follows the slow tail (the 99th percentile), not the typical answer", () => {
    const t = new CallTimeout();
    for (let i = 0; i < 19; i++) t.observe(1_000, 99); // 10 ms a token
    t.observe(3_000, 99); // 30 ms a token: of 20, the 99th percentile is the slowest
    expect(t.budget(999, 1)).toBe(4 * 30 * 1_000);
  });

  it("doubles the budget per attempt, so a long answer cut once gets more room each time", () => {
    const t = learned(20, 1_000, 99);
    const first = t.budget(999, 1) as number;
    expect([2, 3, 4].map((a) => t.budget(999, a))).toEqual([2 * first, 4 * first, 8 * first]);
    // The floor doubles too: it is the first attempt's budget.
    const fast = learned(20, 1, 0);
    expect(fast.budget(1, 2)).toBe(2 * CALL_TIMEOUT_FLOOR_MS);
  });

  it("caps the doubling (at 2^10), and reads an attempt below 1 as the first", () => {
    const t = learned(20, 1_000, 99);
    const first = t.budget(999, 1) as number;
    expect(t.budget(999, 11)).toBe(1_024 * first);
    expect(t.budget(999, 12)).toBe(1_024 * first);
    expect(t.budget(999, 1_000)).toBe(1_024 * first);
    expect(t.budget(999, 0)).toBe(first);
  });

  it("re-learns as answers change (the percentile is refreshed every 32 answers)", () => {
    const t = learned(20, 1_000, 99);
    for (let i = 0; i < 32; i++) t.observe(2_000, 99);
    // The last refresh saw 52 answers, 32 of them at 20 ms a token.
    expect(t.budget(999, 1)).toBe(4 * 20 * 1_000);
    for (let i = 0; i < 256; i++) t.observe(500, 99);
    // Only the last 256 answers are kept: the slow ones are forgotten.
    expect(t.budget(999, 1)).toBe(4 * 5 * 1_000);
  });
});

describe("maxTokensOf", () => {
  it("reads max_tokens and max_completion_tokens", () => {
    expect(maxTokensOf('{"model":"m","max_tokens":64,"messages":[]}')).toBe(64);
    expect(maxTokensOf('{"model":"m","max_completion_tokens": 2048}')).toBe(2048);
    expect(maxTokensOf('{"max_tokens" : 7}')).toBe(7);
  });

  it("is undefined for a body without one, or with a null one", () => {
    expect(maxTokensOf('{"model":"m","messages":[{"role":"user","content":"hi"}]}')).toBeUndefined();
    expect(maxTokensOf('{"model":"m","max_tokens":null}')).toBeUndefined();
    expect(maxTokensOf("")).toBeUndefined();
  });

  it("does not read a max_tokens that a prompt mentions (its quotes are escaped)", () => {
    const mentions = JSON.stringify({
      model: "m",
      messages: [{ role: "user", content: 'Explain "max_tokens": 5 in a request body' }],
    });
    expect(mentions).toContain('\\"max_tokens\\": 5');
    expect(maxTokensOf(mentions)).toBeUndefined();
    const both = JSON.stringify({
      model: "m",
      messages: [{ role: "user", content: 'what does "max_tokens": 5 do?' }],
      max_tokens: 300,
    });
    expect(maxTokensOf(both)).toBe(300);
  });
});
