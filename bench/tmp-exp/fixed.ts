import { createReadStream } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { OpenAiHttpBackend } from "../../src/backends/openai-http.js";
import { Router } from "../../src/backends/router.js";
import { createBatch } from "../../src/batch/batch-service.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { Worker } from "../../src/dispatch/worker.js";
import { silentLogger } from "../../src/logger.js";
import { openRuntime } from "../../src/runtime.js";
import { insertFile } from "../../src/store/files.js";
import { DEFAULT_TENANT, nowSeconds } from "../../src/store/tenants.js";
import { generateInput } from "../lib/gen-input.js";
import { startSimProcess } from "../lib/processes.js";

const N = 5000;
const dir = await mkdtemp("/tmp/exp/fixed-");
await generateInput({ path: join(dir, "in.jsonl"), count: N, maxTokens: 16, seed: 5 });
const sim = await startSimProcess({ zeroCost: true });
for (const lim of (process.argv[2] ?? "16,64,256").split(",").map(Number)) {
  const wd = join(dir, `w${lim}`);
  const rt = await openRuntime(
    { dataDir: wd, store: { kind: "sqlite", path: join(wd, "db") }, logLevel: "silent", limits: DEFAULT_LIMITS },
    { worker: false, logger: silentLogger },
  );
  const router = new Router(
    [{ patterns: ["*"], backends: [{ engine: "openai", url: `${sim.url}/v1` }] }],
    async () => new OpenAiHttpBackend({ baseUrl: `${sim.url}/v1`, timeoutMs: 60000 }),
    { initialLimit: lim, minLimit: lim, maxLimit: lim },
  );
  const worker = new Worker(rt.ctx, router, {});
  let t0 = 0,
    t1 = 0,
    c0 = 0,
    c1 = 0;
  const done = new Promise<void>((res) =>
    rt.ctx.events.on("batch.status", (e) => {
      const c = process.cpuUsage();
      const cc = c.user + c.system;
      if (e.status === "in_progress") {
        t0 = performance.now();
        c0 = cc;
      }
      if (e.status === "finalizing") {
        t1 = performance.now();
        c1 = cc;
      }
      if (e.status === "completed") res();
    }),
  );
  const fileId = "file-x" + lim;
  const { bytes } = await rt.ctx.blobs.put(`files/default/${fileId}`, createReadStream(join(dir, "in.jsonl")));
  await insertFile(rt.ctx.store, {
    id: fileId,
    tenant_id: DEFAULT_TENANT,
    purpose: "batch",
    filename: "x",
    bytes,
    created_at: nowSeconds(),
    expires_at: null,
    status: "processed",
    blob_key: `files/default/${fileId}`,
  });
  await createBatch(rt.ctx, {
    tenantId: DEFAULT_TENANT,
    inputFileId: fileId,
    endpoint: "/v1/chat/completions",
    completionWindow: "24h",
  });
  worker.start();
  await done;
  console.log(
    `fixed limit ${lim}: dispatch ${(N / ((t1 - t0) / 1000)).toFixed(0)} req/s, cpu ${((c1 - c0) / N).toFixed(0)} µs/req`,
  );
  await worker.stop();
  await rt.close();
}
await sim.stop();
