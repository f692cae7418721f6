/** Starts a real Sluice API (and worker) in-process on a loopback port, over a temp data folder. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import OpenAI from "openai";
import { buildApi } from "../../src/api/server.js";
import { DEFAULT_LIMITS, type Limits, resolveS3 } from "../../src/config.js";
import type { MasterKeyring } from "../../src/crypto/master-keys.js";
import type { WorkerOptions } from "../../src/dispatch/worker.js";
import { silentLogger } from "../../src/logger.js";
import { type ExecutionOptions, openRuntime, type Runtime } from "../../src/runtime.js";
import type { StoreLocation } from "../../src/store/store.js";

export interface TestServer {
  baseURL: string;
  apiKey: string;
  dataDir: string;
  runtime: Runtime;
  /** The routes the API registered, with their declared access. */
  routes: FastifyInstance["declaredRoutes"];
  client: OpenAI;
  close(): Promise<void>;
}

export async function startSluice(
  options: {
    execution?: ExecutionOptions;
    worker?: Partial<WorkerOptions> | false;
    limits?: Partial<Limits>;
    /** Encryption at rest (absent: plaintext, like a server without SLUICE_MASTER_KEY). */
    masterKeys?: MasterKeyring;
    /** The store (absent: SQLite in the data folder); e.g. a test PostgreSQL database. */
    store?: StoreLocation;
  } = {},
): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), "sluice-test-"));
  const apiKey = "sk-test-key-0123456789";
  const runtime = await openRuntime(
    {
      dataDir,
      store: options.store ?? { kind: "sqlite", path: join(dataDir, "sluice.db") },
      logLevel: "silent",
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      masterKeys: options.masterKeys,
      // Tests that read `s3://` inputs point the S3 variables at a local server first.
      s3: resolveS3(process.env),
    },
    {
      execution: options.execution ?? { backend: "http://127.0.0.1:9/v1" },
      worker: options.worker ?? { tickMs: 50 },
      logger: silentLogger,
    },
  );
  const app = await buildApi(runtime.ctx, { envKey: apiKey });
  const address = await app.listen({ host: "127.0.0.1", port: 0 });
  runtime.worker?.start();
  const baseURL = `${address}/v1`;
  return {
    baseURL,
    apiKey,
    dataDir,
    runtime,
    routes: app.declaredRoutes,
    client: new OpenAI({ baseURL, apiKey, maxRetries: 0 }),
    async close() {
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
      await runtime.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export function chatLine(
  customId: string,
  content: string,
  model = "test-model",
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    custom_id: customId,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model, messages: [{ role: "user", content }], ...extra },
  });
}

export async function waitForStatus(client: OpenAI, id: string, statuses: string[], timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const b = await client.batches.retrieve(id);
    if (statuses.includes(b.status)) return b;
    if (Date.now() > end) throw new Error(`batch ${id} stuck in ${b.status} (wanted ${statuses.join("|")})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
