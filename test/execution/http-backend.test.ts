/**
 * The OpenAI-compatible HTTP backend alone, against a scripted loopback server: how answers are
 * classified, that one caller signal aborts every call sharing it (the dispatcher shares one per
 * batch) and only those, and that timeouts are enforced without a timer per call. Engines that are
 * away: a refused connection is marked `unreached` (no engine saw it), `probe()` tells a listening
 * server from none, and a call's learned budget (read at every sweep) cuts a hung call early.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { BackendResult } from "../../src/backends/backend.js";
import { OpenAiHttpBackend } from "../../src/backends/openai-http.js";

type Script = (req: IncomingMessage, body: string, res: ServerResponse) => void;

let server: Server;
let base = "";
let script: Script = (_req, _body, res) => res.end("{}");
const hung = new Set<ServerResponse>();

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => script(req, body, res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  for (const res of hung) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const call = (
  backend: OpenAiHttpBackend,
  signal = new AbortController().signal,
  body = '{"model":"m"}',
  budgetMs?: () => number | undefined,
) => backend.call({ endpoint: "/v1/chat/completions", body, model: "m", signal, budgetMs });

/** A loopback port that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe("OpenAiHttpBackend", () => {
  it("returns the body verbatim with usage, request id and retry hints", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: base, timeoutMs: 5_000 });
    let seenPath = "";
    let seenBody = "";
    script = (req, body, res) => {
      seenPath = req.url ?? "";
      seenBody = body;
      res.writeHead(200, { "content-type": "application/json", "x-request-id": "up-1", "retry-after-ms": "250" });
      res.end(
        '{"id":"c1","usage":{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}',
      );
    };
    const r = await call(backend, undefined, '{"model":"m","x":1}');
    expect(seenPath).toBe("/v1/chat/completions");
    expect(seenBody).toBe('{"model":"m","x":1}');
    expect(r).toEqual({
      kind: "response",
      status: 200,
      bodyText:
        '{"id":"c1","usage":{"prompt_tokens":5,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":2}}}',
      requestId: "up-1",
      usage: { inputTokens: 5, outputTokens: 3, cachedTokens: 2, reasoningTokens: 0 },
      retryAfterMs: 250,
    });
    await backend.close();
  });

  it("puts a pretty-printed answer on one line, wraps a non-JSON error, refuses a non-JSON 2xx", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: base, timeoutMs: 5_000 });
    script = (_req, _body, res) => res.end('{\n  "id": "c2"\n}\n');
    const pretty = await call(backend);
    expect(pretty.kind === "response" && pretty.bodyText).toBe('{"id":"c2"}');
    script = (_req, _body, res) => {
      res.writeHead(503, { "retry-after": "2" });
      res.end("overloaded");
    };
    const refused = await call(backend);
    expect(refused).toMatchObject({ kind: "response", status: 503, retryAfterMs: 2000, usage: null });
    expect(refused.kind === "response" && JSON.parse(refused.bodyText)).toEqual({
      error: { message: "overloaded", type: "upstream_error" },
    });
    script = (_req, _body, res) => res.end("not json");
    expect(await call(backend)).toMatchObject({ kind: "failure", code: "invalid_response", retryable: false });
    await backend.close();
  });

  it("aborts every call that shares the fired signal, and only those", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: base, timeoutMs: 30_000 });
    script = (_req, _body, res) => {
      hung.add(res); // never answered
    };
    const batchA = new AbortController();
    const batchB = new AbortController();
    const a = Array.from({ length: 5 }, () => call(backend, batchA.signal));
    const b = Array.from({ length: 3 }, () => call(backend, batchB.signal));
    let bSettled = false;
    void Promise.all(b).then(() => {
      bSettled = true;
    });
    await vi.waitFor(() => expect(hung.size).toBe(8)); // every call reached the engine
    batchA.abort();
    const results: BackendResult[] = await Promise.all(a);
    for (const r of results) expect(r).toMatchObject({ kind: "failure", code: "aborted", retryable: true });
    // A negative: B's calls must stay pending while A's were aborted (a short window to notice).
    await new Promise((r) => setTimeout(r, 100));
    expect(bSettled).toBe(false);
    batchB.abort();
    for (const r of await Promise.all(b)) expect(r).toMatchObject({ kind: "failure", code: "aborted" });
    // A signal that is already aborted never reaches the engine.
    expect(await call(backend, batchA.signal)).toMatchObject({ kind: "failure", code: "aborted" });
    await backend.close();
  });

  it("times out a call that gets no answer, with one sweep rather than a timer per call", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: base, timeoutMs: 200 });
    script = (_req, _body, res) => hung.add(res);
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 4 }, () => call(backend)));
    const elapsed = performance.now() - started;
    for (const r of results) expect(r).toMatchObject({ kind: "failure", code: "timeout", retryable: true });
    // The sweep runs every tenth of the timeout: no call ends before its deadline.
    expect(elapsed).toBeGreaterThanOrEqual(195);
    // The backend is usable afterwards.
    script = (_req, _body, res) => res.end('{"ok":true}');
    expect(await call(backend)).toMatchObject({ kind: "response", status: 200 });
    await backend.close();
  });

  it("reports a refused connection as a retryable connection error that never reached an engine", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: `http://127.0.0.1:${await closedPort()}/v1`, timeoutMs: 5_000 });
    const r = await call(backend);
    expect(r).toMatchObject({ kind: "failure", code: "connection_error", retryable: true, unreached: true });
    expect(r.kind === "failure" && r.message).toMatch(/^ECONNREFUSED: /);
    await backend.close();
  });

  it("does not mark an answer, or a connection that broke after the request was sent, as unreached", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: base, timeoutMs: 5_000 });
    script = (_req, _body, res) => res.socket?.destroy();
    const broken = await call(backend);
    expect(broken).toMatchObject({ kind: "failure", code: "connection_error", retryable: true });
    expect(broken).not.toHaveProperty("unreached");
    script = (_req, _body, res) => {
      res.writeHead(502);
      res.end("bad gateway");
    };
    expect(await call(backend)).toMatchObject({ kind: "response", status: 502 });
    await backend.close();
  });

  it("probes: any answer below 500 from a listening server is up, nothing listening is down (ECONNREFUSED)", async () => {
    let probed = "";
    script = (req, _body, res) => {
      probed = `${req.method} ${req.url} ${req.headers.authorization}`;
      res.writeHead(404);
      res.end("no such route");
    };
    const up = new OpenAiHttpBackend({ baseUrl: base, apiKey: "sk-probe", timeoutMs: 5_000 });
    expect(await up.probe()).toEqual({ ok: true, status: 404 });
    expect(probed).toBe("GET /v1/models Bearer sk-probe");
    script = (_req, _body, res) => {
      res.writeHead(503);
      res.end("loading");
    };
    expect(await up.probe()).toEqual({ ok: false, cause: "HTTP 503" });
    await up.close();
    const down = new OpenAiHttpBackend({ baseUrl: `http://127.0.0.1:${await closedPort()}/v1`, timeoutMs: 5_000 });
    expect(await down.probe()).toEqual({ ok: false, cause: "ECONNREFUSED" });
    await down.close();
  });

  it("cuts a hung call at its learned budget, far sooner than the configured timeout", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: base, timeoutMs: 60_000 });
    script = (_req, _body, res) => hung.add(res);
    const started = performance.now();
    const r = await call(backend, undefined, undefined, () => 200);
    expect(r).toEqual({ kind: "failure", code: "timeout", message: "No answer within 200 ms.", retryable: true });
    // Cut at the next sweep after 200 ms (every 250 ms here), not after the configured minute.
    expect(performance.now() - started).toBeGreaterThanOrEqual(195);
    expect(performance.now() - started).toBeLessThan(30_000);
    await backend.close();
  });

  it("reads the budget at every sweep: one learned while the call runs still cuts it", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: base, timeoutMs: 60_000 });
    const before = hung.size;
    script = (_req, _body, res) => hung.add(res);
    let learned: number | undefined;
    const pending = call(backend, undefined, undefined, () => learned);
    await vi.waitFor(() => expect(hung.size).toBe(before + 1)); // the engine has it, nothing learned yet
    learned = 100;
    expect(await pending).toMatchObject({ kind: "failure", code: "timeout", message: "No answer within 100 ms." });
    await backend.close();
  });

  it("caps a learned budget by the configured timeout, and uses the configured one without a budget", async () => {
    const backend = new OpenAiHttpBackend({ baseUrl: base, timeoutMs: 200 });
    script = (_req, _body, res) => hung.add(res);
    const [longBudget, noBudget, undecided] = await Promise.all([
      call(backend, undefined, undefined, () => 60_000),
      call(backend),
      call(backend, undefined, undefined, () => undefined),
    ]);
    for (const r of [longBudget, noBudget, undecided]) {
      expect(r).toMatchObject({ kind: "failure", code: "timeout", message: "No answer within 200 ms." });
    }
    await backend.close();
  });
});
