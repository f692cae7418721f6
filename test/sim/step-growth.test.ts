/**
 * `stepGrowth`: a sequence's step time is set at admission from how full the batch is, as real
 * engines slow down per token as their batch fills (the efficiency bench's third scenario).
 */
import { afterEach, expect, it, vi } from "vitest";
import { Engine, type JobOutcome } from "../../src/sim/engine.js";

afterEach(() => {
  vi.useRealTimers();
});

/** Four slots, 10 ms a token, no prefill or cache: only the step time varies. */
const engineWith = (stepGrowth: number, now: () => number) =>
  new Engine({
    slots: 4,
    stepMs: 10,
    stepGrowth,
    prefillMsPerToken: 0,
    blockSize: 16,
    cacheBlocks: 0,
    maxQueue: undefined,
    now,
  });

it("slows each new sequence by how many already run, and not the ones already running", async () => {
  vi.useFakeTimers();
  let now = 0;
  const engine = engineWith(1, () => now);
  const done: JobOutcome[] = [];
  const submit = () => engine.submit({ promptTokens: 1, keys: [], completionTokens: 10, onDone: (o) => done.push(o) });
  // Admitted with 0, 1, 2 and 3 sequences running: 10 tokens at 10, 12.5, 15 and 17.5 ms each.
  for (let i = 0; i < 4; i++) submit();
  for (const until of [100, 125, 150, 175]) {
    now = until;
    await vi.advanceTimersByTimeAsync(until - (done.at(-1)?.finishedAt ?? 0));
  }
  expect(done.map((o) => o.finishedAt)).toEqual([100, 125, 150, 175]);
  // The default is a flat step: every sequence takes tokens × stepMs.
  const flat = engineWith(0, () => now);
  const flatDone: number[] = [];
  const start = now;
  for (let i = 0; i < 4; i++)
    flat.submit({
      promptTokens: 1,
      keys: [],
      completionTokens: 10,
      onDone: (o) => flatDone.push(o.finishedAt - start),
    });
  now = start + 100;
  await vi.advanceTimersByTimeAsync(100);
  expect(flatDone).toEqual([100, 100, 100, 100]);
  engine.stop();
  flat.stop();
});
