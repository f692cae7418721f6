/**
 * Regression tests from an attack run against `sluice serve`'s uploads: multipart bodies that
 * hung forever and leaked descriptors, slow bodies held open indefinitely, clients hanging up
 * mid-upload, temp files left by a crash, storage failures blamed on the client, and folders
 * left behind by deletes. Everything runs against a real loopback server; leaks are measured on
 * this process's /proc/self/fd and on the blob folder itself.
 */
import { existsSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApi } from "../../src/api/server.js";
import { LocalBlobStore, TEMP_GRACE_MS } from "../../src/blob/local-blob-store.js";
import { openBlobStore } from "../../src/blob/open-blob-store.js";
import { DEFAULT_LIMITS, type Limits } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { openRuntime, type Runtime } from "../../src/runtime.js";

const API_KEY = "sk-test-attack-0123456789";
const BOUNDARY = "attackBoundary7MA4YWxk";
const WINDOW_MS = 600;

interface Server {
  url: URL;
  dataDir: string;
  blobs: string;
  runtime: Runtime;
  logs: string[];
  close(): Promise<void>;
}

/** A real API over a temp folder, logging into `logs` (startSluice's logger is silent). */
async function startServer(limits: Partial<Limits> = {}): Promise<Server> {
  const dataDir = await mkdtemp(join(tmpdir(), "sluice-attack-"));
  const logs: string[] = [];
  const logger = createLogger("info", (line) => void logs.push(line));
  const runtime = await openRuntime(
    {
      dataDir,
      store: { kind: "sqlite", path: join(dataDir, "sluice.db") },
      logLevel: "info",
      limits: { ...DEFAULT_LIMITS, bodyTimeoutMs: WINDOW_MS, ...limits },
    },
    { worker: false, logger },
  );
  const app: FastifyInstance = await buildApi(runtime.ctx, { envKey: API_KEY });
  const url = new URL(await app.listen({ host: "127.0.0.1", port: 0 }));
  return {
    url,
    dataDir,
    blobs: join(dataDir, "blobs"),
    runtime,
    logs,
    async close() {
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
      await runtime.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

const field = (name: string, value: string) =>
  `--${BOUNDARY}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
const fileHead = (name = "file") =>
  `--${BOUNDARY}\r\ncontent-disposition: form-data; name="${name}"; filename="in.jsonl"\r\n` +
  "content-type: application/jsonl\r\n\r\n";
const END = `\r\n--${BOUNDARY}--\r\n`;
const LINE = '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}\n';

interface Outcome {
  status?: number;
  body?: { error?: { message: string; type: string; param: string | null; code: string | null } } & Record<
    string,
    unknown
  >;
  /** Set when the connection ended without a complete response. */
  error?: string;
  ms: number;
}

/**
 * Sends a multipart upload by hand: `send` writes the body (after the headers went out) and may
 * pace it; `length` is the announced content-length. Resolves on the response or a closed socket.
 */
function upload(
  s: Server,
  length: number,
  send: (req: ReturnType<typeof httpRequest>) => Promise<void> | void,
): Promise<Outcome> {
  const start = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: Omit<Outcome, "ms">) => {
      if (!done) resolve({ ...o, ms: Date.now() - start });
      done = true;
    };
    const req = httpRequest(
      {
        host: s.url.hostname,
        port: s.url.port,
        path: "/v1/files",
        method: "POST",
        agent: false,
        headers: {
          authorization: `Bearer ${API_KEY}`,
          "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
          "content-length": String(length),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          text += c;
        });
        res.on("end", () => finish({ status: res.statusCode ?? 0, body: JSON.parse(text || "{}") }));
        res.on("error", (err) => finish({ error: err.message }));
      },
    );
    req.on("error", (err) => finish({ error: err.message }));
    req.flushHeaders();
    void Promise.resolve(send(req)).catch((err: Error) => finish({ error: err.message }));
  });
}

const whole = (s: Server, body: string) =>
  upload(s, Buffer.byteLength(body), (req) => {
    req.end(body);
  });

const openFds = () => readdirSync("/proc/self/fd").length;

/** Waits (bounded) for a condition on state, returning its last value. */
async function until<T>(read: () => T, ok: (v: T) => boolean, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let v = read();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    v = read();
  }
  return v;
}

/** Every regular file under `dir`, relative paths. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

async function fileRows(s: Server): Promise<number> {
  const rows = await s.runtime.ctx.store.db.selectFrom("files").select("id").execute();
  return rows.length;
}

/** No blob, no temp file, no row, and the descriptor count back where it was. */
async function expectNothingLeft(s: Server, fdsBefore: number) {
  expect(
    await until(
      () => filesUnder(s.blobs),
      (f) => f.length === 0,
    ),
  ).toEqual([]);
  expect(await fileRows(s)).toBe(0);
  expect(await until(openFds, (n) => n <= fdsBefore)).toBeLessThanOrEqual(fdsBefore);
}

describe("multipart limits", () => {
  let s: Server;
  beforeAll(async () => {
    s = await startServer();
    // Warm up (lazily opened descriptors) so the baseline below is stable.
    expect((await whole(s, field("purpose", "batch") + fileHead() + LINE + END)).status).toBe(200);
    await rm(s.blobs, { recursive: true, force: true });
    await s.runtime.ctx.store.db.deleteFrom("files").execute();
  });
  afterAll(async () => s?.close());

  it("answers 16 extra fields before the file with a prompt 413, leaving nothing behind", async () => {
    const fds = openFds();
    let body = field("purpose", "batch");
    for (let i = 0; i < 16; i++) body += field(`extra${i}`, "v");
    const res = await whole(s, body + fileHead() + LINE + END);
    expect(res.status).toBe(413);
    expect(res.ms).toBeLessThan(WINDOW_MS);
    expect(res.body?.error).toMatchObject({ code: "too_many_fields", type: "invalid_request_error" });
    expect(res.body?.error?.message).toContain("at most 16");
    await expectNothingLeft(s, fds);
  });

  it("also when far over every parser limit, and with a second file", async () => {
    const fds = openFds();
    let body = "";
    for (let i = 0; i < 40; i++) body += field(`f${i}`, "v");
    const res = await whole(s, body + fileHead() + LINE + END);
    expect(res.status).toBe(413);
    const two = await whole(s, `${field("purpose", "batch") + fileHead() + LINE}\r\n${fileHead()}${LINE}${END}`);
    expect(two.status).toBe(413);
    expect(two.body?.error?.message).toContain("one file");
    await expectNothingLeft(s, fds);
  });

  it("still accepts 16 fields", async () => {
    let body = field("purpose", "batch");
    for (let i = 0; i < 15; i++) body += field(`extra${i}`, "v");
    const res = await whole(s, body + fileHead() + LINE + END);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ object: "file", bytes: LINE.length });
  });

  it("answers a malformed body 400 without quoting it", async () => {
    const fds = openFds();
    const body = `${field("purpose", "batch")}--${BOUNDARY}\r\nSECRET-MARKER-no-colon\r\n\r\nx${END}`;
    const res = await whole(s, body);
    expect(res.status).toBe(400);
    expect(res.body?.error?.type).toBe("invalid_request_error");
    expect(JSON.stringify(res.body)).not.toContain("SECRET-MARKER");
    await rm(s.blobs, { recursive: true, force: true });
    await s.runtime.ctx.store.db.deleteFrom("files").execute();
    await expectNothingLeft(s, fds);
  });
});

describe("slow and abandoned bodies", () => {
  let s: Server;
  beforeAll(async () => {
    s = await startServer();
    expect((await whole(s, field("purpose", "batch") + fileHead() + LINE + END)).status).toBe(200);
    await rm(s.blobs, { recursive: true, force: true });
    await s.runtime.ctx.store.db.deleteFrom("files").execute();
  });
  afterAll(async () => s?.close());

  it("cuts a body that trickles in within the configured window", async () => {
    const fds = openFds();
    const head = field("purpose", "batch") + fileHead();
    let stop = false;
    const res = await upload(s, head.length + 1_000_000, async (req) => {
      req.write(head);
      // One byte every 50 ms: far under the minimum rate, but never idle for a whole window.
      while (!stop && !req.destroyed) {
        req.write("x");
        await new Promise((r) => setTimeout(r, 50));
      }
    });
    stop = true;
    // One window to notice, one sample of slack; a 408 when the answer gets through first.
    expect(res.ms).toBeLessThan(WINDOW_MS * 2 + 500);
    if (res.status !== undefined) {
      expect(res.status).toBe(408);
      expect(res.body?.error).toMatchObject({ code: "request_timeout", type: "invalid_request_error" });
    }
    expect(s.logs.some((l) => l.includes("request body too slow"))).toBe(true);
    await expectNothingLeft(s, fds);
  });

  it("closes a kept-alive connection whose body trickles on after an early 4xx", async () => {
    const fds = openFds();
    let body = field("purpose", "batch");
    for (let i = 0; i < 17; i++) body += field(`extra${i}`, "v");
    const socket = connect(Number(s.url.port), s.url.hostname);
    const start = Date.now();
    let answer = "";
    socket.setEncoding("utf8");
    socket.on("data", (c: string) => {
      answer += c;
    });
    socket.on("error", () => {}); // the server resets it: that is the point
    const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(Date.now() - start)));
    socket.write(
      `POST /v1/files HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\nauthorization: Bearer ${API_KEY}\r\n` +
        `content-type: multipart/form-data; boundary=${BOUNDARY}\r\ncontent-length: 10000000\r\n\r\n${body}`,
    );
    const trickle = setInterval(() => socket.writable && socket.write("x"), 50);
    const ms = await closed;
    clearInterval(trickle);
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(ms).toBeLessThan(WINDOW_MS * 2 + 500);
    await expectNothingLeft(s, fds);
  });

  it("drains the rest of a body answered early, so the connection does not stall", async () => {
    let head = field("purpose", "batch");
    for (let i = 0; i < 17; i++) head += field(`extra${i}`, "v");
    head += fileHead();
    const rest = Buffer.alloc(8 * 1024 * 1024, "x"); // more than every buffer on the way holds
    const socket = connect(Number(s.url.port), s.url.hostname);
    socket.on("error", () => {});
    let answer = "";
    socket.setEncoding("utf8");
    const answered = (n: number) =>
      new Promise<void>((resolve) => {
        const check = () => (answer.match(/HTTP\/1\.1 /g) ?? []).length >= n && resolve();
        socket.on("data", (c: string) => {
          answer += c;
          check();
        });
        check();
      });
    const length = head.length + rest.length + END.length;
    socket.write(
      `POST /v1/files HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${API_KEY}\r\n` +
        `content-type: multipart/form-data; boundary=${BOUNDARY}\r\ncontent-length: ${length}\r\n\r\n${head}`,
    );
    await answered(1);
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    socket.write(rest);
    socket.write(END);
    socket.write("GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    await answered(2);
    expect(answer).toMatch(/HTTP\/1\.1 200[\s\S]*"status":"ok"/);
    socket.destroy();
  });

  it("lets a steady upload run for many windows", async () => {
    const head = field("purpose", "batch") + fileHead();
    const chunk = LINE.repeat(50); // ~4 KiB
    const chunks = 40; // at one per 50 ms: ~2 s, over three windows, at ~80 KiB/s
    const res = await upload(s, head.length + chunk.length * chunks + END.length, async (req) => {
      req.write(head);
      for (let i = 0; i < chunks; i++) {
        req.write(chunk);
        await new Promise((r) => setTimeout(r, 50));
      }
      req.end(END);
    });
    expect(res.status).toBe(200);
    expect(res.ms).toBeGreaterThan(WINDOW_MS * 3);
    expect(res.body).toMatchObject({ bytes: chunk.length * chunks });
    await s.runtime.ctx.store.db.deleteFrom("files").execute();
    await rm(s.blobs, { recursive: true, force: true });
  });

  it("aborts the blob write when the client hangs up mid-upload", async () => {
    const fds = openFds();
    const head = field("purpose", "batch") + fileHead();
    const res = await upload(s, head.length + 10_000_000, async (req) => {
      req.write(head);
      req.write(LINE.repeat(2000)); // ~170 KB: the temp file is open and being written
      const tmp = await until(
        () => filesUnder(s.blobs),
        (f) => f.some((p) => p.startsWith(".tmp/")),
      );
      expect(tmp.some((p) => p.startsWith(".tmp/"))).toBe(true);
      req.destroy();
    });
    expect(res.error).toBeDefined();
    await expectNothingLeft(s, fds);
  });
});

describe("storage failures", () => {
  let s: Server;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => s?.close());

  it("answers 500 without the path or errno when the blob folder cannot be written, and logs why", async () => {
    // Root ignores permissions: a regular file where the folder should be fails for anyone.
    await mkdir(s.blobs, { recursive: true });
    await writeFile(join(s.blobs, "files"), "not a folder");
    const res = await whole(s, field("purpose", "batch") + fileHead() + LINE + END);
    expect(res.status).toBe(500);
    expect(res.body?.error).toEqual({
      message: "Internal server error",
      type: "server_error",
      param: null,
      code: "server_error",
    });
    const failure = s.logs.find((l) => l.includes("request failed"));
    expect(failure).toContain("ENOTDIR");
    expect(failure).toContain("/v1/files");
    expect(filesUnder(s.blobs)).toEqual(["files"]);
    expect(await fileRows(s)).toBe(0);
  });
});

describe("deletes", () => {
  let s: Server;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(async () => s?.close());

  it("leave no folder naming the tenant or the deleted object", async () => {
    const res = await whole(s, field("purpose", "batch") + fileHead() + LINE + END);
    expect(res.status).toBe(200);
    const id = res.body?.id as string;
    expect(filesUnder(s.blobs)).toEqual([`files/default/${id}`]);
    const del = await fetch(new URL(`/v1/files/${id}`, s.url), {
      method: "DELETE",
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(del.status).toBe(200);
    expect(readdirSync(s.blobs).filter((n) => n !== ".tmp")).toEqual([]);
  });
});

describe("local blob folder hygiene", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sluice-blob-hygiene-"));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("sweeps the temp files a crash left when the store opens, sparing fresh ones", async () => {
    const root = join(dir, "sweep", "blobs");
    await mkdir(join(root, ".tmp"), { recursive: true });
    const stale = join(root, ".tmp", "crashed.tmp");
    const fresh = join(root, ".tmp", "in-flight.tmp");
    await writeFile(stale, "partial");
    await writeFile(fresh, "partial");
    const old = (Date.now() - TEMP_GRACE_MS - 60_000) / 1000;
    await utimes(stale, old, old);
    await openBlobStore(undefined, join(dir, "sweep")); // the path `sluice serve` opens it by
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
  });

  it("removes a deleted blob's empty folders up to the root, and only those", async () => {
    const root = join(dir, "prune");
    const blobs = new LocalBlobStore(root);
    const { Readable } = await import("node:stream");
    for (const key of [
      "outputs/t1/batch_a/output.jsonl",
      "outputs/t1/batch_a/errors.jsonl",
      "outputs/t1/batch_b/output.jsonl",
    ]) {
      await blobs.put(key, Readable.from(["x"]));
    }
    await blobs.delete("outputs/t1/batch_a/output.jsonl");
    expect(existsSync(join(root, "outputs/t1/batch_a"))).toBe(true); // errors.jsonl is still there
    await blobs.delete("outputs/t1/batch_a/errors.jsonl");
    expect(existsSync(join(root, "outputs/t1/batch_a"))).toBe(false);
    expect(existsSync(join(root, "outputs/t1/batch_b/output.jsonl"))).toBe(true);
    await blobs.delete("outputs/t1/batch_b/output.jsonl");
    expect(existsSync(join(root, "outputs"))).toBe(false);
    expect(existsSync(root)).toBe(true);
    await blobs.delete("outputs/t1/batch_b/output.jsonl"); // idempotent, folders already gone
  });
});
