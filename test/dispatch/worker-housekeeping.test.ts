/**
 * Regression: the worker's 250 ms housekeeping tick had become a busy loop. Each tick ran a
 * "complete" job for every in_progress batch; the job found rows still unfinished and returned,
 * and every finished job woke the tick at once: ~4,500 ticks (four queries each) in 11 s of a
 * 50,000-request run. Here a batch waits on a slow backend and every query the worker sends is
 * counted through a Kysely plugin.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  UnknownRow,
} from "kysely";
import { afterEach, expect, it } from "vitest";
import { Router } from "../../src/backends/router.js";
import { createBatch } from "../../src/batch/batch-service.js";
import { importLocalFile } from "../../src/batch/local-file.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { Worker } from "../../src/dispatch/worker.js";
import { silentLogger } from "../../src/logger.js";
import { backendFactory, openRuntime, type Runtime, resolveRoutes } from "../../src/runtime.js";
import { getBatch } from "../../src/store/batches.js";
import { DEFAULT_TENANT } from "../../src/store/tenants.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";

class CountQueries implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.count++;
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

let dir = "";
let rt: Runtime | undefined;
let worker: Worker | undefined;
let backend: FakeBackend | undefined;

afterEach(async () => {
  await worker?.stop();
  await rt?.close();
  await backend?.close();
  await rm(dir, { recursive: true, force: true });
});

it("ticks about every 250 ms while a batch waits on its backend, not in a busy loop", async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-housekeeping-"));
  backend = await startFakeBackend(() => ({ kind: "ok", delayMs: 3_000 }));
  const input = join(dir, "in.jsonl");
  const lines = Array.from({ length: 20 }, (_, i) =>
    JSON.stringify({
      custom_id: `r-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "m", messages: [{ role: "user", content: `q${i}` }] },
    }),
  );
  await writeFile(input, `${lines.join("\n")}\n`);
  rt = await openRuntime(
    {
      dataDir: dir,
      store: { kind: "sqlite", path: join(dir, "sluice.db") },
      logLevel: "silent",
      limits: DEFAULT_LIMITS,
    },
    { execution: { backend: `${backend.url}/v1` }, logger: silentLogger, worker: false },
  );
  const engine = { backend: `${backend.url}/v1` };
  const counter = new CountQueries();
  const ctx = { ...rt.ctx, store: { ...rt.ctx.store, db: rt.ctx.store.db.withPlugin(counter) } };
  worker = new Worker(ctx, new Router((await resolveRoutes(engine)).routes, backendFactory(engine, silentLogger)));
  const fileId = await importLocalFile(rt.ctx, DEFAULT_TENANT, input);
  const batch = await createBatch(rt.ctx, {
    tenantId: DEFAULT_TENANT,
    inputFileId: fileId,
    endpoint: "/v1/chat/completions",
    completionWindow: "24h",
  });
  worker.start();
  // Validation and the first claim, then a steady wait on the slow backend.
  while ((await getBatch(rt.ctx.store, DEFAULT_TENANT, batch.id))?.status !== "in_progress") {
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 300));
  const before = counter.count;
  await new Promise((r) => setTimeout(r, 1_500));
  const during = counter.count - before;
  process.stdout.write(`queries by the worker in 1.5 s of waiting: ${during}\n`);
  // ~6 ticks × 3 queries (recover leases, list batches, the complete check) in 1.5 s; the busy
  // loop made thousands. The bound leaves room for a lease renewal and a slow machine.
  expect(during).toBeGreaterThan(3);
  expect(during).toBeLessThan(60);
  // Calls are out (slow start's first few) and still waiting: the batch really is in flight.
  expect(backend.calls.length).toBeGreaterThan(0);
  expect((await getBatch(rt.ctx.store, DEFAULT_TENANT, batch.id))?.completed).toBe(0);
});
