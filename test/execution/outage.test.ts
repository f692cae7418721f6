/**
 * Engines that come and go: an engine down at start, killed mid-batch and restarted, never coming
 * back, and faults scattered among good answers. Real engines on loopback: the simulator, in
 * process or as a `sluice sim` child killed with SIGKILL.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { toFile } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningSimulator, startSimulator } from "../../src/sim/index.js";
import { type Child, sluice } from "../helpers/cli.js";
import { freePort } from "../helpers/ports.js";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";

let s: TestServer | undefined;
const sims: RunningSimulator[] = [];
const children: Child[] = [];
afterEach(async () => {
  await s?.close();
  s = undefined;
  for (const sim of sims.splice(0)) await sim.close();
  for (const c of children.splice(0)) {
    c.proc.kill("SIGKILL");
    await c.exited;
  }
});

async function submit(server: TestServer, lines: string[], window = "24h") {
  const file = await server.client.files.create({
    file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "in.jsonl"),
    purpose: "batch",
  });
  return server.client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: window as "24h",
  });
}

type Line = { custom_id: string; response: { status_code: number } | null; error: { code: string } | null };

async function lines(server: TestServer, fileId: string | null | undefined): Promise<Line[]> {
  if (!fileId) return [];
  const text = await (await server.client.files.content(fileId)).text();
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

const prompts = (n: number, prefix = "p") =>
  Array.from({ length: n }, (_, i) =>
    chatLine(`${prefix}-${i}`, `${prefix} prompt ${i}`, "sluice-sim", { max_tokens: 8 }),
  );

/** Polls the Batch object until `until` holds (the API is what a user sees). */
async function waitForBatch(
  server: TestServer,
  id: string,
  until: (b: Awaited<ReturnType<TestServer["client"]["batches"]["retrieve"]>>) => boolean,
  timeoutMs = 60_000,
) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const b = await server.client.batches.retrieve(id);
    if (until(b)) return b;
    if (Date.now() > end) throw new Error(`batch ${id} did not reach the condition: ${JSON.stringify(b)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

type WithWaiting = { waiting_for_backend?: { since: number; message: string } | null };

describe("engines that come and go", () => {
  it("an engine down at start and up 20 s later: every line answered, no attempt spent on refused connections", async () => {
    const port = await freePort();
    // One attempt per line: a refused connection that spent one would fail its line.
    s = await startSluice({ execution: { backend: `http://127.0.0.1:${port}/v1`, maxAttempts: 1 } });
    const started = Date.now();
    const batch = await submit(s, prompts(2000));
    // The documented field says the batch waits, while it stays in_progress.
    const waiting = await waitForBatch(s, batch.id, (b) => (b as WithWaiting).waiting_for_backend != null);
    expect(waiting.status).toBe("in_progress");
    expect(waiting.request_counts?.failed).toBe(0);
    await new Promise((r) => setTimeout(r, Math.max(0, 20_000 - (Date.now() - started))));
    expect((await s.client.batches.retrieve(batch.id)).request_counts?.failed).toBe(0);
    sims.push(await startSimulator({ port, slots: 64, stepMs: 1, prefillMsPerToken: 0, model: "sluice-sim" }));
    const done = await waitForStatus(s.client, batch.id, ["completed", "failed", "expired"], 90_000);
    expect(done.request_counts).toEqual({ total: 2000, completed: 2000, failed: 0 });
    expect((done as WithWaiting).waiting_for_backend).toBeNull();
    const out = await lines(s, done.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(Array.from({ length: 2000 }, (_, i) => `p-${i}`));
  }, 150_000);

  it("an engine that never returns: lines expire with batch_expired at the window, not connection_error", async () => {
    const port = await freePort();
    s = await startSluice({ execution: { backend: `http://127.0.0.1:${port}/v1` } });
    const batch = await submit(s, prompts(50), "8s");
    const done = await waitForStatus(s.client, batch.id, ["expired", "completed", "failed"], 60_000);
    expect(done.status).toBe("expired");
    expect(done.request_counts).toEqual({ total: 50, completed: 0, failed: 50 });
    const errors = await lines(s, done.error_file_id);
    expect(errors).toHaveLength(50);
    expect(new Set(errors.map((l) => l.error?.code))).toEqual(new Set(["batch_expired"]));
  }, 90_000);

  it("faults among good answers (5% 500, 5% 429, 3% resets, 2% hangs): every line answered", async () => {
    const sim = await startSimulator({
      slots: 32,
      stepMs: 1,
      prefillMsPerToken: 0,
      model: "sluice-sim",
      faults: { error500: 0.05, error429: 0.05, reset: 0.03, hang: 0.02, retryAfterMs: 50 },
      seed: 7,
    });
    sims.push(sim);
    s = await startSluice({ execution: { backend: `${sim.url}/v1` } });
    const health: unknown[] = [];
    s.runtime.ctx.events.on("backend.health", (e) => health.push(e));
    const batch = await submit(s, prompts(1500, "f"));
    const done = await waitForStatus(s.client, batch.id, ["completed", "failed", "expired"], 120_000);
    expect(done.request_counts).toEqual({ total: 1500, completed: 1500, failed: 0 });
    // Scattered faults are retried as errors; they never open the circuit breaker.
    expect(health).toEqual([]);
  }, 150_000);

  it("a batch of two models, one engine away: the other model's lines finish, the rest wait without spinning", async () => {
    const sim = await startSimulator({ slots: 16, stepMs: 1, prefillMsPerToken: 0, model: "up" });
    sims.push(sim);
    const down = await freePort();
    const dir = await (await import("node:fs/promises")).mkdtemp(
      join((await import("node:os")).tmpdir(), "sluice-routes-"),
    );
    const routes = join(dir, "routes.yaml");
    await writeFile(
      routes,
      `routes:\n  - match: up\n    backends:\n      - url: ${sim.url}/v1\n  - match: away\n    backends:\n      - url: http://127.0.0.1:${down}/v1\n`,
    );
    s = await startSluice({ execution: { configFile: routes, maxAttempts: 1 } });
    // Interleaved: every claim holds rows of both models.
    const lines = Array.from({ length: 2400 }, (_, i) =>
      chatLine(`m-${i}`, `mixed ${i}`, i % 2 === 0 ? "up" : "away", { max_tokens: 4 }),
    );
    const batch = await submit(s, lines);
    const waiting = await waitForBatch(
      s,
      batch.id,
      (b) => (b.request_counts?.completed ?? 0) >= 1200 && (b as WithWaiting).waiting_for_backend != null,
    );
    expect(waiting.status).toBe("in_progress");
    expect(waiting.request_counts).toEqual({ total: 2400, completed: 1200, failed: 0 });
    // Waiting costs next to nothing: no claim-and-hand-back loop over the waiting lines.
    const before = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 3000));
    const cpu = process.cpuUsage(before);
    const share = (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
    expect(share).toBeLessThan(0.5);
    expect((await s.client.batches.retrieve(batch.id)).request_counts?.failed).toBe(0);
  }, 120_000);

  it("a call that hangs at the tail of a batch is hedged: the row is answered by a second copy on its first attempt", async () => {
    const { startFakeBackend } = await import("../helpers/fake-backend.js");
    const fake = await startFakeBackend((call) =>
      call.customKey === "echo:tail prompt 59" && call.attempt === 1 ? { kind: "hang" } : { kind: "ok", delayMs: 5 },
    );
    try {
      s = await startSluice({ execution: { backend: fake.url } });
      const batch = await submit(s, prompts(60, "tail"));
      const done = await waitForStatus(s.client, batch.id, ["completed", "failed", "expired"], 60_000);
      expect(done.request_counts).toEqual({ total: 60, completed: 60, failed: 0 });
      // Two calls for the hung line, none of them a retry: the attempt was never spent.
      expect(fake.counts.get("echo:tail prompt 59")).toBe(2);
      const row = await s.runtime.ctx.store.db
        .selectFrom("requests")
        .select(["attempts"])
        .where("batch_id", "=", batch.id)
        .where("line", "=", 60)
        .executeTakeFirstOrThrow();
      expect(Number(row.attempts)).toBe(0);
    } finally {
      await s?.close();
      s = undefined;
      await fake.close();
    }
  }, 90_000);

  it("one of two replicas killed -9 mid-batch and restarted on its port: the batch completes exactly once, the other serves meanwhile", async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const simArgs = (port: number) => [
      "sim",
      "--port",
      String(port),
      "--slots",
      "16",
      "--step-ms",
      "2",
      "--model",
      "sluice-sim",
    ];
    const startSim = async (port: number) => {
      const c = sluice(simArgs(port));
      children.push(c);
      await c.waitFor(/listening on/);
      return c;
    };
    const a = await startSim(portA);
    await startSim(portB);
    const dir = await (await import("node:fs/promises")).mkdtemp(
      join((await import("node:os")).tmpdir(), "sluice-routes-"),
    );
    const routes = join(dir, "routes.yaml");
    await writeFile(
      routes,
      `routes:\n  - match: "*"\n    backends:\n      - url: http://127.0.0.1:${portA}/v1\n      - url: http://127.0.0.1:${portB}/v1\n`,
    );
    s = await startSluice({ execution: { configFile: routes } });
    const n = 3000;
    const batch = await submit(s, prompts(n, "k"));
    await waitForBatch(s, batch.id, (b) => (b.request_counts?.completed ?? 0) >= n * 0.2);
    a.proc.kill("SIGKILL");
    await a.exited;
    const atKill = (await s.client.batches.retrieve(batch.id)).request_counts?.completed ?? 0;
    // While A is away, B keeps the batch moving.
    const during = await waitForBatch(s, batch.id, (b) => (b.request_counts?.completed ?? 0) >= atKill + 200);
    expect(during.request_counts?.failed).toBe(0);
    await startSim(portA);
    const done = await waitForStatus(s.client, batch.id, ["completed", "failed", "expired"], 120_000);
    expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
    const out = await lines(s, done.output_file_id);
    // Exactly once, in input order.
    expect(out.map((l) => l.custom_id)).toEqual(Array.from({ length: n }, (_, i) => `k-${i}`));
  }, 150_000);
});
