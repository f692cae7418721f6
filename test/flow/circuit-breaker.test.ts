/**
 * A replica's circuit breaker on its own, under fake timers with an injected probe, clock and
 * jitter: when it opens (outage results in a row only), how its probes back off (doubling, capped,
 * jittered), what a failing and a passing probe do, half-open's verdicts, its change events, and
 * that close() stops probing.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type BreakerChange, type BreakerOptions, CircuitBreaker, type Probe } from "../../src/flow/circuit-breaker.js";

type Answer = Awaited<ReturnType<Probe>>;

/** A breaker whose probe answers what `answers` holds next (down when empty), recording when it ran. */
function breaker(options: Partial<BreakerOptions> = {}, random: () => number = () => 0.5) {
  const answers: (Answer | Error)[] = [];
  const probedAt: number[] = [];
  const probe: Probe = async () => {
    probedAt.push(Date.now());
    const next = answers.shift() ?? { ok: false, cause: "ECONNREFUSED" };
    if (next instanceof Error) throw next;
    return next;
  };
  const b = new CircuitBreaker(
    probe,
    { threshold: 3, minProbeMs: 1_000, maxProbeMs: 8_000, ...options },
    () => Date.now(),
    random,
  );
  const changes: BreakerChange[] = [];
  b.onChange = (c) => changes.push(c);
  return { b, answers, probedAt, changes };
}

/** Opens a breaker of threshold `n` with `n` outage results. */
function open(b: CircuitBreaker, n = 3, cause = "ECONNREFUSED"): void {
  for (let i = 0; i < n; i++) b.failure(cause);
}

/** The gaps between consecutive probes (and from `from` to the first). */
const gaps = (from: number, at: number[]) => at.map((t, i) => t - (i === 0 ? from : (at[i - 1] as number)));

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("circuit breaker", () => {
  it("opens only at the threshold of outage results in a row; a success in between starts the count over", () => {
    const { b, changes } = breaker();
    b.failure("ECONNREFUSED");
    b.failure("ECONNREFUSED");
    expect([b.state, b.failuresInARow, b.allows]).toEqual(["closed", 2, true]);
    b.success();
    expect(b.failuresInARow).toBe(0);
    b.failure("HTTP 502");
    b.failure("HTTP 502");
    expect(b.state).toBe("closed");
    b.failure("HTTP 503");
    expect([b.state, b.failuresInARow, b.allows, b.lastCause]).toEqual(["open", 3, false, "HTTP 503"]);
    expect(b.downSinceMs).toBe(1_000_000);
    expect(changes).toEqual([{ state: "open", cause: "HTTP 503", downSinceMs: 1_000_000, shared: false }]);
  });

  it("never opens on scattered faults among good answers, and never probes", async () => {
    const { b, probedAt, changes } = breaker();
    for (let i = 0; i < 1_000; i++) {
      if (i % 3 === 2) b.success();
      else b.failure("ECONNRESET"); // two in a row, then a success: one short of the threshold
    }
    await vi.advanceTimersByTimeAsync(60_000);
    expect([b.state, b.downSinceMs, probedAt, changes]).toEqual(["closed", null, [], []]);
  });

  it("probes with a doubling backoff capped at maxProbeMs; a failing probe keeps it open", async () => {
    // random 0.5: each wait is ¾ of the doubling step (the step's half, plus half of the other half).
    const { b, probedAt, changes } = breaker();
    open(b);
    const openedAt = Date.now();
    await vi.advanceTimersByTimeAsync(749);
    expect(probedAt).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(probedAt).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(60_000);
    // 1 s, 2 s, 4 s, then 8 s (the cap) over and over.
    expect(gaps(openedAt, probedAt).slice(0, 8)).toEqual([750, 1_500, 3_000, 6_000, 6_000, 6_000, 6_000, 6_000]);
    expect([b.state, b.allows, b.downSinceMs]).toEqual(["open", false, openedAt]);
    expect(changes.map((c) => c.state)).toEqual(["open"]);
    expect(b.lastCause).toBe("ECONNREFUSED");
  });

  it("jitters each wait between half the step and the whole step, from the injected random", async () => {
    const draws = [0, 0.999, 0.25, 0];
    const { b, probedAt } = breaker({}, () => draws.shift() ?? 0);
    open(b);
    const openedAt = Date.now();
    await vi.advanceTimersByTimeAsync(20_000);
    // Steps 1 s, 2 s, 4 s, 8 s: draws of 0 wait half the step, 0.999 almost all of it.
    expect(gaps(openedAt, probedAt).slice(0, 4)).toEqual([500, 1_999, 2_500, 4_000]);
  });

  it("records a failing probe's cause, and one that throws counts as not answering", async () => {
    const { b, answers, probedAt } = breaker();
    open(b);
    answers.push({ ok: false, cause: "HTTP 503" }, new Error("socket hang up"));
    await vi.advanceTimersByTimeAsync(750);
    expect(b.lastCause).toBe("HTTP 503");
    await vi.advanceTimersByTimeAsync(1_500);
    expect(probedAt).toHaveLength(2);
    expect([b.state, b.lastCause]).toEqual(["open", "socket hang up"]);
  });

  it("goes half-open when a probe answers, and closed at the first success after it", async () => {
    const { b, answers, changes } = breaker();
    open(b);
    const downSince = Date.now();
    answers.push({ ok: false, cause: "ECONNREFUSED" }, { ok: true });
    await vi.advanceTimersByTimeAsync(750 + 1_500);
    expect([b.state, b.allows, b.failuresInARow, b.downSinceMs]).toEqual(["half-open", true, 0, downSince]);
    b.success();
    expect([b.state, b.allows, b.downSinceMs]).toEqual(["closed", true, null]);
    expect(changes).toEqual([
      { state: "open", cause: "ECONNREFUSED", downSinceMs: downSince, shared: false },
      { state: "half-open", cause: "probe answered", downSinceMs: downSince, shared: false },
      { state: "closed", cause: "answering", downSinceMs: null, shared: false },
    ]);
  });

  it("reopens at the first outage result in half-open, its backoff going on from where it was", async () => {
    const { b, answers, probedAt, changes } = breaker();
    open(b);
    const downSince = Date.now();
    answers.push({ ok: false, cause: "ECONNREFUSED" }, { ok: true });
    await vi.advanceTimersByTimeAsync(750 + 1_500); // two probes: the second answered
    expect(b.state).toBe("half-open");
    b.failure("HTTP 502"); // one is enough on probation
    expect([b.state, b.allows, b.downSinceMs]).toEqual(["open", false, downSince]);
    const reopenedAt = Date.now();
    await vi.advanceTimersByTimeAsync(2_999);
    expect(probedAt).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    // The third wait: a 4 s step, not a fresh 1 s one.
    expect(probedAt).toHaveLength(3);
    expect((probedAt[2] as number) - reopenedAt).toBe(3_000);
    expect(changes.map((c) => [c.state, c.cause])).toEqual([
      ["open", "ECONNREFUSED"],
      ["half-open", "probe answered"],
      ["open", "HTTP 502"],
    ]);
  });

  it("starts a new outage from the first step once it closed", async () => {
    const { b, answers, probedAt } = breaker();
    open(b);
    answers.push({ ok: false, cause: "ECONNREFUSED" }, { ok: false, cause: "ECONNREFUSED" }, { ok: true });
    await vi.advanceTimersByTimeAsync(750 + 1_500 + 3_000);
    b.success();
    expect(b.state).toBe("closed");
    await vi.advanceTimersByTimeAsync(10_000);
    open(b);
    const reopenedAt = Date.now();
    expect(b.downSinceMs).toBe(reopenedAt);
    await vi.advanceTimersByTimeAsync(750);
    expect(probedAt).toHaveLength(4);
    expect(probedAt[3]).toBe(reopenedAt + 750);
  });

  it("does not count late failures of calls sent before it opened as new outages, nor probe more for them", async () => {
    const { b, probedAt, changes } = breaker();
    open(b);
    for (let i = 0; i < 10; i++) b.failure("ECONNRESET");
    await vi.advanceTimersByTimeAsync(750);
    expect(probedAt).toHaveLength(1);
    expect(changes).toHaveLength(1);
  });

  it("stops probing on close(), and ignores a probe that answers after it", async () => {
    const { b, probedAt, changes } = breaker();
    open(b);
    b.close();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(probedAt).toEqual([]);

    let answer: (a: Answer) => void = () => {};
    const slow = new CircuitBreaker(
      () => new Promise<Answer>((resolve) => (answer = resolve)),
      { threshold: 1, minProbeMs: 1_000, maxProbeMs: 8_000 },
      () => Date.now(),
      () => 0.5,
    );
    const slowChanges: BreakerChange[] = [];
    slow.onChange = (c) => slowChanges.push(c);
    slow.failure("ECONNREFUSED");
    await vi.advanceTimersByTimeAsync(750); // the probe is running
    slow.close();
    answer({ ok: true });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(slow.state).toBe("open");
    expect(slowChanges.map((c) => c.state)).toEqual(["open"]);
    expect(changes.map((c) => c.state)).toEqual(["open"]);
  });

  it("follows another worker: forceOpen opens it (shared) and probes it, probeSoon probes at once", async () => {
    const { b, answers, probedAt, changes } = breaker();
    b.forceOpen("ECONNREFUSED", 900_000);
    expect([b.state, b.downSinceMs]).toEqual(["open", 900_000]);
    expect(changes).toEqual([{ state: "open", cause: "ECONNREFUSED", downSinceMs: 900_000, shared: true }]);
    answers.push({ ok: true });
    b.probeSoon();
    await vi.advanceTimersByTimeAsync(0);
    expect(probedAt).toEqual([1_000_000]);
    expect(b.state).toBe("half-open");
    // The probe the backoff had scheduled was replaced, not run as well.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(probedAt).toHaveLength(1);
  });
});
