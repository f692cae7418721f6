import { setMaxListeners } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningSimulator, type SimOptions, startSimulator } from "../../src/sim/index.js";
import { chatBody, postJson, waitFor } from "./helpers.js";

let sim: RunningSimulator | undefined;
afterEach(() => sim?.close());

type Outcome = "ok" | "500" | "429" | "reset" | "hang" | `other-${number}`;

/**
 * Sends `n` distinct requests at once and classifies each outcome. Hung requests are recognised
 * without timeouts: once every other request has settled and /stats counts the rest as hanging,
 * the client aborts them.
 */
async function fire(s: RunningSimulator, n: number, tag = "r"): Promise<Outcome[]> {
  const abort = new AbortController();
  setMaxListeners(0, abort.signal);
  const outcomes: Outcome[] = new Array(n);
  let settled = 0;
  const all = Array.from({ length: n }, async (_, i) => {
    try {
      const r = await postJson(s.url, "/v1/chat/completions", chatBody("sys", `${tag}-${i}`, 2), abort.signal);
      outcomes[i] = r.status === 200 ? "ok" : r.status === 500 ? "500" : r.status === 429 ? "429" : `other-${r.status}`;
      if (r.status === 429) expect(r.headers["retry-after-ms"]).toBe("100");
    } catch (err) {
      outcomes[i] = abort.signal.aborted && (err as Error).name === "AbortError" ? "hang" : "reset";
    } finally {
      settled++;
    }
  });
  await waitFor(() => settled + s.stats().hanging === n);
  abort.abort();
  await Promise.all(all);
  await waitFor(() => s.stats().hanging === 0);
  return outcomes;
}

const count = (xs: Outcome[], o: Outcome) => xs.filter((x) => x === o).length;
const faulty: SimOptions = { zeroCost: true, faults: { error500: 0.1, error429: 0.1, reset: 0.05, hang: 0.05 } };

describe("fault injection", () => {
  it("injects 500s, 429s, resets and hangs at the configured rates, matching /stats", async () => {
    sim = await startSimulator(faulty);
    const n = 600;
    const outcomes = await fire(sim, n);
    const stats = sim.stats();
    expect(count(outcomes, "500")).toBe(stats.faults.error500);
    expect(count(outcomes, "429")).toBe(stats.faults.error429);
    expect(count(outcomes, "reset")).toBe(stats.faults.reset);
    expect(count(outcomes, "hang")).toBe(stats.faults.hang);
    expect(count(outcomes, "ok")).toBe(stats.requestsServed);
    // Binomial: expected 60 / 60 / 30 / 30 of 600; bounds are ~4 standard deviations wide.
    for (const [kind, expected, slack] of [
      ["500", 60, 30],
      ["429", 60, 30],
      ["reset", 30, 22],
      ["hang", 30, 22],
    ] as const) {
      expect(Math.abs(count(outcomes, kind) - expected)).toBeLessThanOrEqual(slack);
    }
  });

  it("is deterministic per (seed, body, attempt), whatever the arrival order", async () => {
    sim = await startSimulator(faulty);
    const first = await fire(sim, 200);
    sim.reset();
    const second = await fire(sim, 200);
    expect(second).toEqual(first);
    await sim.close();
    sim = await startSimulator({ ...faulty, seed: 2 });
    expect(await fire(sim, 200)).not.toEqual(first);
  });

  it("draws afresh on each attempt of the same request, so retries can succeed", async () => {
    sim = await startSimulator({ zeroCost: true, faults: { error500: 0.5 } });
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++)
      statuses.push((await postJson(sim.url, "/v1/completions", { model: "m", prompt: "p" })).status);
    expect(statuses).toContain(200);
    expect(statuses).toContain(500);
    expect(sim.stats().faults.error500).toBe(statuses.filter((s) => s === 500).length);
  });
});
