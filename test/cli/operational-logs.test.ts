/**
 * The operational log of a real `sluice serve` whose stderr is a pipe: pino JSON lines for the
 * start-up configuration, the batch lifecycle and (at debug) every request, and no secret in any
 * of them.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Child, sluice } from "../helpers/cli.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine } from "../helpers/server.js";
import { ensureBuilt } from "../scale/helpers/sluice-process.js";

const API_KEY = "sk-logs-test-0123456789abcdef";
const MASTER_KEY = Buffer.alloc(32, 42).toString("base64");

type Entry = Record<string, unknown> & { level: string; msg: string; time: string };

/** The child's stderr, and a wait for the first JSON entry that matches. */
function stderrLog(child: Child) {
  let text = "";
  const waiting = new Set<() => void>();
  child.proc.stderr?.on("data", (d: Buffer) => {
    text += d.toString();
    for (const check of waiting) check();
  });
  const entries = () =>
    text
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Entry);
  return {
    text: () => text,
    entries,
    waitFor(match: (e: Entry) => boolean, timeoutMs = 60_000): Promise<Entry> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = entries().find(match);
          if (found === undefined) return;
          waiting.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiting.delete(check);
          reject(new Error(`no such log entry within ${timeoutMs} ms; stderr:\n${text}`));
        }, timeoutMs);
        waiting.add(check);
        check();
      });
    },
  };
}

describe("operational logs of sluice serve (stderr not a terminal)", () => {
  let dataDir: string;
  let backend: FakeBackend;
  let serve: Child;
  let log: ReturnType<typeof stderrLog>;
  let batchId: string;

  beforeAll(async () => {
    await ensureBuilt();
    dataDir = await mkdtemp(join(tmpdir(), "sluice-logs-"));
    backend = await startFakeBackend();
    serve = sluice(["serve", "--data", dataDir, "--port", "0", "--backend", backend.url, "--log-level", "debug"], {
      SLUICE_API_KEY: API_KEY,
      SLUICE_MASTER_KEY: MASTER_KEY,
    });
    log = stderrLog(serve);
    const [, baseURL] = await serve.waitFor(/Sluice listening on (\S+)\n/);
    const client = new OpenAI({ baseURL, apiKey: API_KEY, maxRetries: 0 });
    const lines = ["a", "b", "c"].map((c) => chatLine(c, `hello ${c}`)).join("\n");
    const file = await client.files.create({ file: await toFile(Buffer.from(lines), "in.jsonl"), purpose: "batch" });
    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    batchId = batch.id;
    await log.waitFor((e) => e.msg === "batch completed" && e.batchId === batchId);
    // A query string stays out of the access log (the SDK would escape the "?").
    const res = await fetch(`${baseURL}/batches/${batchId}?secret=query-value`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(res.status).toBe(200);
    await log.waitFor((e) => e.msg === "request" && e.route === "/v1/batches/:id");
    serve.proc.kill("SIGTERM");
    await serve.exited;
  }, 120_000);

  afterAll(async () => {
    if (serve !== undefined && serve.proc.exitCode === null) serve.proc.kill("SIGKILL");
    await backend?.close();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  it("writes one JSON object per line (the CLI's own notices aside)", () => {
    const lines = log
      .text()
      .split("\n")
      .filter((l) => l !== "");
    for (const line of lines) {
      if (line.startsWith("sluice: ")) continue;
      expect(() => JSON.parse(line), line).not.toThrow();
    }
    for (const e of log.entries()) {
      expect(Object.keys(e)).toEqual(expect.arrayContaining(["level", "time", "pid", "hostname", "msg"]));
      expect(["debug", "info", "warn", "error"]).toContain(e.level);
    }
  });

  it("logs the start-up configuration once, without the API key or the master key", () => {
    const starts = log.entries().filter((e) => e.msg === "sluice starting");
    expect(starts).toHaveLength(1);
    expect(starts[0]).toMatchObject({
      level: "info",
      command: "serve",
      logLevel: "debug",
      dataDir,
      store: { kind: "sqlite", path: join(dataDir, "sluice.db") },
      blobs: join(dataDir, "blobs"),
      encryptionAtRest: true,
      server: { port: 0, tls: false, worker: true },
      routes: [{ match: ["*"], backends: [{ engine: "openai", url: backend.url }] }],
    });
  });

  it("logs the batch's lifecycle: created, validated, started, completed with counts", () => {
    const mine = log.entries().filter((e) => e.batchId === batchId && e.msg.startsWith("batch "));
    expect(mine.map((e) => e.msg)).toEqual(["batch created", "batch validated", "batch started", "batch completed"]);
    const [created, validated, started, completed] = mine;
    expect(created).toMatchObject({ level: "info", tenantId: "default", endpoint: "/v1/chat/completions" });
    expect(created?.completionWindow).toBe("24h");
    expect(validated).toMatchObject({ lines: 3, model: "test-model" });
    expect(validated?.durationMs).toEqual(expect.any(Number));
    expect(started).toMatchObject({ status: "in_progress", total: 3 });
    expect(completed).toMatchObject({ status: "completed", total: 3, completed: 3, failed: 0 });
    expect(completed?.durationSeconds).toEqual(expect.any(Number));
    expect(completed).toHaveProperty("requestsPerSecond");
  });

  it("logs each request at debug: method, route, path without its query, status, duration, tenant", () => {
    const requests = log.entries().filter((e) => e.msg === "request");
    expect(requests.every((e) => e.level === "debug")).toBe(true);
    expect(requests).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ method: "POST", route: "/v1/files", path: "/v1/files", status: 200 }),
        expect.objectContaining({ method: "POST", route: "/v1/batches", status: 200, tenantId: "default" }),
      ]),
    );
    const retrieve = requests.find((e) => e.route === "/v1/batches/:id");
    expect(retrieve?.path).toMatch(/^\/v1\/batches\/batch_[^?]*$/);
    expect(retrieve?.durationMs).toEqual(expect.any(Number));
    for (const e of requests) expect(Object.keys(e)).not.toEqual(expect.arrayContaining(["headers", "body"]));
  });

  it("writes no secret anywhere", () => {
    const all = serve.output();
    for (const secret of [API_KEY, MASTER_KEY, "query-value", "Bearer"]) expect(all).not.toContain(secret);
  });
});
