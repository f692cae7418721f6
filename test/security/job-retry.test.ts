/**
 * Regression: a batch job that threw something unexpected (a RangeError from a 100,000-deep body,
 * S3 unreachable) was restarted at once by the worker: 5,575 log lines in 9 minutes and a core at
 * 100 % until the tenant cancelled. Now jobs retry with capped, jittered exponential backoff and
 * the batch fails with `batch_job_failed` once the attempts are used up. Here the job reads its
 * input from an `s3://` URL whose endpoint refuses connections, so every attempt really throws;
 * the timings come in through the worker's options (shortened, not switched off).
 */
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { Router } from "../../src/backends/router.js";
import { createBatch } from "../../src/batch/batch-service.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { Worker } from "../../src/dispatch/worker.js";
import { type Logger, silentLogger } from "../../src/logger.js";
import { backendFactory, openRuntime, type Runtime } from "../../src/runtime.js";
import { getBatch } from "../../src/store/batches.js";
import { DEFAULT_TENANT } from "../../src/store/tenants.js";

let dir = "";
let rt: Runtime | undefined;
let worker: Worker | undefined;
const savedEnv: Record<string, string | undefined> = {};

afterEach(async () => {
  await worker?.stop();
  await rt?.close();
  await rm(dir, { recursive: true, force: true });
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

async function closedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

interface Entry {
  at: number;
  msg: string;
  fields: Record<string, unknown>;
}

it("retries a failing batch job with growing delays, then fails the batch with batch_job_failed", async () => {
  const env = {
    SLUICE_S3_ENDPOINT: `http://127.0.0.1:${await closedPort()}`,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    // One try per job attempt: the SDK's own retries would only stretch the test.
    AWS_MAX_ATTEMPTS: "1",
  };
  for (const [k, v] of Object.entries(env)) {
    savedEnv[k] = process.env[k];
    process.env[k] = v;
  }
  dir = await mkdtemp(join(tmpdir(), "sluice-job-retry-"));
  rt = await openRuntime(
    {
      dataDir: dir,
      store: { kind: "sqlite", path: join(dir, "sluice.db") },
      logLevel: "silent",
      limits: { ...DEFAULT_LIMITS, inputUrlPrefixes: ["s3://inputs/in"] },
    },
    { logger: silentLogger, worker: false },
  );
  const log: Entry[] = [];
  const capture: Logger = {
    ...silentLogger,
    error: (msg, fields = {}) => log.push({ at: Date.now(), msg, fields }),
  };
  const engine = { backend: "http://127.0.0.1:9/v1" };
  const policy = { maxAttempts: 5, baseDelayMs: 80, maxDelayMs: 400 };
  worker = new Worker(
    { ...rt.ctx, logger: capture },
    new Router(
      [{ patterns: ["*"], backends: [{ engine: "openai", url: engine.backend }] }],
      backendFactory(engine, capture),
    ),
    { tickMs: 10, jobRetry: policy },
  );
  const batch = await createBatch(rt.ctx, {
    tenantId: DEFAULT_TENANT,
    inputFileId: "s3://inputs/in/job.jsonl",
    endpoint: "/v1/chat/completions",
    completionWindow: "24h",
  });
  const started = Date.now();
  worker.start();
  let row = await getBatch(rt.ctx.store, DEFAULT_TENANT, batch.id);
  while (row?.status === "validating" && Date.now() - started < 20_000) {
    await new Promise((r) => setTimeout(r, 20));
    row = await getBatch(rt.ctx.store, DEFAULT_TENANT, batch.id);
  }
  expect(row?.status).toBe("failed");
  const errors = JSON.parse(row?.errors ?? "{}") as { data: { code: string; message: string }[] };
  expect(errors.data.map((e) => e.code)).toEqual(["batch_job_failed"]);
  const message = errors.data[0]?.message ?? "";
  expect(message).toContain("5 times");
  for (const leak of ["127.0.0.1", "ECONNREFUSED", "s3://", "/", dir]) expect(message).not.toContain(leak);

  const failures = log.filter((e) => e.fields.batchId === batch.id);
  expect(failures.map((e) => e.msg)).toEqual([
    ...Array.from({ length: 4 }, () => "batch job failed"),
    "batch job failed; failing the batch",
  ]);
  const delays = failures.slice(0, 4).map((e) => e.fields.retryInMs as number);
  delays.forEach((d, i) => {
    const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** i);
    expect(d).toBeGreaterThanOrEqual(exp / 2);
    expect(d).toBeLessThanOrEqual(exp);
  });
  // Equal jitter: below the cap each delay is at least the previous one's maximum, so they grow
  // (at the cap two delays share one range, and either may be the larger).
  for (let i = 1; i < delays.length; i++) {
    if (policy.baseDelayMs * 2 ** i <= policy.maxDelayMs) {
      expect(delays[i]).toBeGreaterThanOrEqual(delays[i - 1] as number);
    }
  }
  // No attempt came before its delay had passed (a few ms for the timestamps taken after the decision).
  for (let i = 1; i < failures.length; i++) {
    const gap = (failures[i]?.at ?? 0) - (failures[i - 1]?.at ?? 0);
    expect(gap).toBeGreaterThanOrEqual((delays[i - 1] as number) - 5);
  }
  const total = (failures.at(-1)?.at ?? 0) - started;
  process.stdout.write(`job attempts: 5 in ${total} ms; delays ${delays.join(", ")} ms\n`);

  // Bounded: once failed, the batch is left alone.
  const after = log.length;
  await new Promise((r) => setTimeout(r, 500));
  expect(log.length).toBe(after);
});
