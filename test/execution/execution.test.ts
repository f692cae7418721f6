import { toFile } from "openai";
import { afterEach, describe, expect, it, vi } from "vitest";
import { expectedContent, type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";

let s: TestServer | undefined;
let fake: FakeBackend | undefined;
afterEach(async () => {
  await s?.close();
  await fake?.close();
  s = undefined;
  fake = undefined;
});

const fastRetry = {
  maxAttempts: 3,
  baseDelayMs: 20,
  maxDelayMs: 100,
  maxRetryAfterMs: 5000,
  retryStatuses: [408, 429],
  retryServerErrors: true,
};

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

type Line = {
  custom_id: string;
  response: { status_code: number; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
};
async function readLines(server: TestServer, fileId: string | null | undefined): Promise<Line[]> {
  if (!fileId) return [];
  const text = await (await server.client.files.content(fileId)).text();
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

describe("execution engine", () => {
  it("runs a batch end to end through the official SDK, output in input order", async () => {
    fake = await startFakeBackend(() => ({ kind: "ok", delayMs: 5 }));
    s = await startSluice({ execution: { backend: fake.url } });
    const n = 300;
    const lines = Array.from({ length: n }, (_, i) => chatLine(`req-${i}`, `prompt ${i}`));
    const created = await submit(s, lines);
    const done = await waitForStatus(s.client, created.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
    expect(done.error_file_id).toBeNull();
    const out = await readLines(s, done.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(lines.map((_, i) => `req-${i}`));
    for (const [i, l] of out.entries()) {
      expect(l.response?.status_code).toBe(200);
      const choices = l.response?.body.choices as { message: { content: string } }[] | undefined;
      const msg = choices?.[0]?.message.content;
      expect(msg).toBe(`echo:prompt ${i}`);
      expect(l.error).toBeNull();
      expect((l as unknown as { id: string }).id).toMatch(/^batch_req_/);
    }
    const promptTokens = lines.reduce((sum, _, i) => sum + `echo:prompt ${i}`.length, 0);
    expect(done.usage).toMatchObject({
      input_tokens: promptTokens,
      output_tokens: 3 * n,
      total_tokens: promptTokens + 3 * n,
    });
    expect(done.output_file_id && (await s.client.files.retrieve(done.output_file_id)).purpose).toBe("batch_output");
    expect(done.in_progress_at).toBeGreaterThan(0);
    expect(done.finalizing_at).toBeGreaterThan(0);
    expect(done.completed_at).toBeGreaterThan(0);
  });

  it("retries 429 (retry-after), 500, resets and hangs; exhausts into the error file; 4xx is final", async () => {
    fake = await startFakeBackend((call) => {
      const p = call.customKey;
      if (p.endsWith("429") && call.attempt === 1) return { kind: "status", status: 429, retryAfterMs: 50 };
      if (p.endsWith("500") && call.attempt < 3) return { kind: "status", status: 500 };
      if (p.endsWith("reset") && call.attempt === 1) return { kind: "reset" };
      if (p.endsWith("hang") && call.attempt === 1) return { kind: "hang" };
      if (p.endsWith("always503"))
        return { kind: "status", status: 503, body: { error: { message: "overloaded", type: "server_error" } } };
      if (p.endsWith("bad400"))
        return {
          kind: "status",
          status: 400,
          body: { error: { message: "bad param", type: "invalid_request_error" } },
        };
      return { kind: "ok" };
    });
    s = await startSluice({
      execution: { backend: fake.url, timeoutMs: 500 },
      worker: { tickMs: 50, retry: fastRetry },
    });
    const names = ["429", "500", "reset", "hang", "always503", "bad400", "plain"];
    const created = await submit(
      s,
      names.map((n) => chatLine(n, `p-${n}`)),
    );
    const done = await waitForStatus(s.client, created.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 7, completed: 5, failed: 2 });
    const out = await readLines(s, done.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(["429", "500", "reset", "hang", "plain"]);
    const errs = await readLines(s, done.error_file_id);
    expect(errs.map((l) => l.custom_id)).toEqual(["always503", "bad400"]);
    expect(errs[0]?.response?.status_code).toBe(503);
    expect(errs[0]?.response?.body).toEqual({ error: { message: "overloaded", type: "server_error" } });
    expect(errs[1]?.response?.status_code).toBe(400);
    expect(fake.counts.get("echo:p-always503")).toBe(3);
    expect(fake.counts.get("echo:p-bad400")).toBe(1);
    expect(fake.counts.get("echo:p-500")).toBe(3);
  });

  it("splits output and error files over several pages of rows, in input order, with unique line ids", async () => {
    // Every 7th line is refused (400, final): outputs and errors interleave across the 1,000-row pages.
    fake = await startFakeBackend((call) =>
      Number(call.customKey.split("-")[1]) % 7 === 3
        ? { kind: "status", status: 400, body: { error: { message: "no", type: "invalid_request_error" } } }
        : { kind: "ok" },
    );
    s = await startSluice({ execution: { backend: fake.url }, worker: { tickMs: 50 } });
    const n = 2_345;
    const created = await submit(
      s,
      Array.from({ length: n }, (_, i) => chatLine(`k${i}`, `p-${i}`)),
    );
    const done = await waitForStatus(s.client, created.id, ["completed"], 120_000);
    const refused = Array.from({ length: n }, (_, i) => i).filter((i) => i % 7 === 3);
    expect(done.request_counts).toEqual({ total: n, completed: n - refused.length, failed: refused.length });
    const out = await readLines(s, done.output_file_id);
    const errs = await readLines(s, done.error_file_id);
    expect(errs.map((l) => l.custom_id)).toEqual(refused.map((i) => `k${i}`));
    expect(out.map((l) => l.custom_id)).toEqual(
      Array.from({ length: n }, (_, i) => i)
        .filter((i) => i % 7 !== 3)
        .map((i) => `k${i}`),
    );
    const ids = [...out, ...errs].map((l) => (l as unknown as { id: string }).id);
    expect(new Set(ids).size).toBe(n);
    for (const id of ids) expect(id).toMatch(/^batch_req_[0-9a-f]{32}$/);
    // The partial-output extension serves the same lines, both kinds in input order with `all`.
    const all = await fetch(`${s.baseURL}/batches/${created.id}/output?type=all`, {
      headers: { authorization: `Bearer ${s.apiKey}` },
    }).then((r) => r.text());
    const allLines = all.split("\n").filter(Boolean);
    expect(allLines.map((l) => (JSON.parse(l) as Line).custom_id)).toEqual(
      Array.from({ length: n }, (_, i) => `k${i}`),
    );
    expect(allLines.map((l) => (JSON.parse(l) as { id: string }).id)).toEqual(
      [...out, ...errs]
        .map((l) => l as unknown as { id: string; custom_id: string })
        .sort((a, b) => Number(a.custom_id.slice(1)) - Number(b.custom_id.slice(1)))
        .map((l) => l.id),
    );
  });

  it("reports connection failures as {code, message} errors (a line that resets its connection every time)", async () => {
    // Refused connections never fail a line (test/execution/outage.test.ts); a connection the
    // engine resets on every call of a line does, after its attempts and a bounded number of
    // calls that did not count (the engine looked away after them).
    fake = await startFakeBackend(() => ({ kind: "reset" }));
    s = await startSluice({
      execution: { backend: fake.url },
      worker: { tickMs: 50, retry: { ...fastRetry, maxAttempts: 2 } },
    });
    const created = await submit(s, [chatLine("x", "y")]);
    const done = await waitForStatus(s.client, created.id, ["completed"]);
    expect(done.request_counts).toMatchObject({ completed: 0, failed: 1 });
    expect(done.output_file_id).toBeNull();
    expect(done.errors?.data?.[0]?.code).toBe("all_requests_failed");
    const [line] = await readLines(s, done.error_file_id);
    expect(line?.response).toBeNull();
    expect(line?.error?.code).toBe("connection_error");
    // 2 attempts, and at most 3 calls lost to the outage in between.
    expect(fake.calls.length).toBeGreaterThanOrEqual(2);
    expect(fake.calls.length).toBeLessThanOrEqual(5);
  });

  it("without output files (as `sluice run`), still ends the batch and reports all-failed", async () => {
    fake = await startFakeBackend((call) =>
      call.customKey.includes("bad") ? { kind: "status", status: 400 } : { kind: "ok" },
    );
    s = await startSluice({ execution: { backend: fake.url }, worker: { tickMs: 50, outputFiles: false } });
    const mixed = await submit(s, [chatLine("a", "fine"), chatLine("b", "bad")]);
    const mixedDone = await waitForStatus(s.client, mixed.id, ["completed"]);
    expect(mixedDone.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
    expect([mixedDone.output_file_id, mixedDone.error_file_id, mixedDone.errors ?? null]).toEqual([null, null, null]);
    const failed = await submit(s, [chatLine("c", "bad"), chatLine("d", "bad too")]);
    const failedDone = await waitForStatus(s.client, failed.id, ["completed"]);
    expect(failedDone.request_counts).toEqual({ total: 2, completed: 0, failed: 2 });
    expect(failedDone.errors?.data?.[0]?.code).toBe("all_requests_failed");
  });

  it("cancel aborts in-flight calls and delivers what finished", async () => {
    fake = await startFakeBackend((call) => ({ kind: "ok", delayMs: call.customKey.endsWith("fast") ? 0 : 60_000 }));
    s = await startSluice({ execution: { backend: fake.url } });
    const lines = [chatLine("f1", "fast"), chatLine("s1", "slow"), chatLine("f2", "fast"), chatLine("s2", "slow")];
    const created = await submit(s, lines);
    for (;;) {
      const b = await s.client.batches.retrieve(created.id);
      if (b.request_counts?.completed === 2) break;
      await new Promise((r) => setTimeout(r, 30));
    }
    await s.client.batches.cancel(created.id);
    const done = await waitForStatus(s.client, created.id, ["cancelled"], 20_000);
    expect(done.request_counts).toEqual({ total: 4, completed: 2, failed: 2 });
    expect((await readLines(s, done.output_file_id)).map((l) => l.custom_id)).toEqual(["f1", "f2"]);
    const errs = await readLines(s, done.error_file_id);
    expect(errs.map((l) => [l.custom_id, l.error?.code])).toEqual([
      ["s1", "batch_cancelled"],
      ["s2", "batch_cancelled"],
    ]);
    // The aborted calls' connections close: wait for the engine to see it, not for a fixed time.
    await vi.waitFor(() => expect(fake?.inFlight()).toBe(0), { timeout: 10_000 });
  });

  it("expires at the end of the completion window, delivering finished results", async () => {
    fake = await startFakeBackend((call) => ({ kind: "ok", delayMs: call.customKey.endsWith("fast") ? 0 : 60_000 }));
    s = await startSluice({ execution: { backend: fake.url } });
    const created = await submit(s, [chatLine("a", "fast"), chatLine("b", "slow")], "2s");
    expect(created.expires_at).toBe(created.created_at + 2);
    const done = await waitForStatus(s.client, created.id, ["expired"], 20_000);
    expect(done.expired_at).toBeGreaterThan(0);
    expect((await readLines(s, done.output_file_id)).map((l) => l.custom_id)).toEqual(["a"]);
    const errs = await readLines(s, done.error_file_id);
    expect(errs).toEqual([
      expect.objectContaining({
        custom_id: "b",
        response: null,
        error: {
          code: "batch_expired",
          message: "This request could not be executed before the completion window expired.",
        },
      }),
    ]);
  });

  it("streams partial results while running, and progress as SSE", async () => {
    fake = await startFakeBackend((call) => ({ kind: "ok", delayMs: call.customKey.includes("slow") ? 1500 : 0 }));
    s = await startSluice({ execution: { backend: fake.url } });
    const created = await submit(s, [chatLine("a", "quick"), chatLine("b", "slow")]);
    const events = fetch(`${s.baseURL}/batches/${created.id}/events`, {
      headers: { authorization: `Bearer ${s.apiKey}` },
    }).then((r) => r.text());
    let partial = "";
    for (let i = 0; i < 100 && !partial.includes('"a"'); i++) {
      await new Promise((r) => setTimeout(r, 20));
      const res = await fetch(`${s.baseURL}/batches/${created.id}/output`, {
        headers: { authorization: `Bearer ${s.apiKey}` },
      });
      partial = await res.text();
    }
    expect(JSON.parse(partial.trim()).custom_id).toBe("a");
    expect((await s.client.batches.retrieve(created.id)).status).toBe("in_progress");
    await waitForStatus(s.client, created.id, ["completed"]);
    const sse = await events;
    const statuses = [...sse.matchAll(/"status":"(\w+)"/g)].map((m) => m[1]);
    expect(statuses).toContain("in_progress");
    expect(statuses[statuses.length - 1]).toBe("completed");
  });

  it("fails a line whose model has no route instead of sticking", async () => {
    fake = await startFakeBackend();
    const { writeFile, mkdtemp } = await import("node:fs/promises");
    const dir = await mkdtemp(`${(await import("node:os")).tmpdir()}/sluice-cfg-`);
    await writeFile(`${dir}/sluice.yaml`, `routes:\n  - match: "known-*"\n    backends:\n      - url: ${fake.url}\n`);
    s = await startSluice({ execution: { configFile: `${dir}/sluice.yaml` } });
    const created = await submit(s, [chatLine("a", "x", "known-1"), chatLine("b", "y", "mystery")]);
    const done = await waitForStatus(s.client, created.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
    const [err] = await readLines(s, done.error_file_id);
    expect(err?.error?.code).toBe("model_not_found");
    expect(err?.error?.message).toContain("mystery");
  });

  it("keeps the result body exactly as the backend produced it", async () => {
    fake = await startFakeBackend();
    s = await startSluice({ execution: { backend: fake.url } });
    const created = await submit(s, [chatLine("u", 'ünïcødé "quoted" \\ line')]);
    const done = await waitForStatus(s.client, created.id, ["completed"]);
    const [line] = await readLines(s, done.output_file_id);
    const body = line?.response?.body as { choices: { message: { content: string } }[] };
    expect(body.choices[0]?.message.content).toBe(
      expectedContent({ messages: [{ content: 'ünïcødé "quoted" \\ line' }] }),
    );
  });
});
