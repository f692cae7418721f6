/**
 * Two workers on one PostgreSQL store share what their circuit breakers learn: the first finds the
 * engine down and records it; the second, started afterwards, starts with its replica open (it
 * spends no call finding out); when the engine comes back, both resume and the batch completes
 * with one attempt per line (none spent on refused connections).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import OpenAI, { toFile } from "openai";
import { afterAll, describe, expect, it } from "vitest";
import { buildApi } from "../../src/api/server.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import type { SluiceEventMap } from "../../src/events.js";
import { silentLogger } from "../../src/logger.js";
import { openRuntime, type Runtime } from "../../src/runtime.js";
import { type RunningSimulator, startSimulator } from "../../src/sim/index.js";
import { freePort } from "../helpers/ports.js";
import { chatLine, waitForStatus } from "../helpers/server.js";
import { STORES, type TestDatabase } from "../helpers/stores.js";

const postgres = STORES.find((k) => k.name === "postgres");

type Health = SluiceEventMap["backend.health"];

describe.runIf(postgres !== undefined)("breaker state shared by workers (PostgreSQL)", () => {
  let db: TestDatabase;
  const dirs: string[] = [];
  const runtimes: Runtime[] = [];
  let app: FastifyInstance | undefined;
  let sim: RunningSimulator | undefined;

  afterAll(async () => {
    await app?.close();
    for (const rt of runtimes) await rt.close();
    await sim?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    await db?.drop();
  });

  async function worker(backend: string): Promise<{ rt: Runtime; health: Health[] }> {
    const dir = await mkdtemp(join(tmpdir(), "sluice-shared-health-"));
    dirs.push(dir);
    const rt = await openRuntime(
      { dataDir: dir, store: db.location, logLevel: "silent", limits: DEFAULT_LIMITS },
      { execution: { backend, maxAttempts: 1 }, worker: { tickMs: 50, leaseMs: 5_000 }, logger: silentLogger },
    );
    runtimes.push(rt);
    const health: Health[] = [];
    rt.ctx.events.on("backend.health", (e) => health.push(e));
    return { rt, health };
  }

  const until = async (what: () => boolean, timeoutMs = 60_000) => {
    const end = Date.now() + timeoutMs;
    while (!what()) {
      if (Date.now() > end) throw new Error("timed out");
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  it("a second worker starts with the replica open; both resume when the engine returns", async () => {
    db = await (postgres as NonNullable<typeof postgres>).createDatabase();
    const port = await freePort();
    const backend = `http://127.0.0.1:${port}/v1`;
    const a = await worker(backend);
    app = await buildApi(a.rt.ctx, { envKey: "sk-test-key-0123456789" });
    const address = await app.listen({ host: "127.0.0.1", port: 0 });
    const client = new OpenAI({ baseURL: `${address}/v1`, apiKey: "sk-test-key-0123456789", maxRetries: 0 });
    a.rt.worker?.start();
    const lines = Array.from({ length: 300 }, (_, i) =>
      chatLine(`s-${i}`, `shared ${i}`, "sluice-sim", { max_tokens: 4 }),
    );
    const file = await client.files.create({
      file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "in.jsonl"),
      purpose: "batch",
    });
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    await until(() => a.health.some((e) => e.state === "open" && !e.shared));

    const b = await worker(backend);
    b.rt.worker?.start();
    await until(() => b.health.length > 0);
    // B's first word on the replica is A's: it opened without B spending calls on it.
    expect(b.health[0]).toMatchObject({ state: "open", shared: true });
    const waiting = (await client.batches.retrieve(batch.id)) as { waiting_for_backend?: unknown; status: string };
    expect(waiting.status).toBe("in_progress");
    expect(waiting.waiting_for_backend).not.toBeNull();

    sim = await startSimulator({ port, slots: 32, stepMs: 1, prefillMsPerToken: 0, model: "sluice-sim" });
    const done = await waitForStatus(client, batch.id, ["completed", "failed", "expired"], 90_000);
    expect(done.request_counts).toEqual({ total: 300, completed: 300, failed: 0 });
    await until(() => [a, b].every((w) => w.health.at(-1)?.state === "closed"), 30_000);
  }, 150_000);
});
