/**
 * Dedup within a batch, end to end through the official SDK against a real server on each store:
 * identical deterministic lines are sent once and every custom_id gets the answer, in input order,
 * naming the line that answered it; sampling lines merge only with `dedup: "all"`; `"off"` never
 * merges; a leader's 400 is every follower's; a cancel ends merged lines like pending ones.
 */
import type OpenAI from "openai";
import { toFile } from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { expectedContent, type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";
import { STORES, type TestDatabase } from "../helpers/stores.js";

type Line = {
  custom_id: string;
  response: { status_code: number; body: { choices?: { message: { content: string } }[] } } | null;
  error: { code: string; message: string } | null;
  merged_with?: string;
};

type DedupView = { dedup: { mode: string; merged: number } };

describe.each(STORES)("dedup within a batch on $name", (kind) => {
  let db: TestDatabase | undefined;
  let s: TestServer | undefined;
  let fake: FakeBackend | undefined;

  beforeAll(async () => {
    if (kind.name === "postgres") db = await kind.createDatabase();
  });
  afterEach(async () => {
    await s?.close();
    await fake?.close();
    s = undefined;
    fake = undefined;
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function serve(script?: Parameters<typeof startFakeBackend>[0]): Promise<TestServer> {
    fake = await startFakeBackend(script ?? (() => ({ kind: "ok", delayMs: 2 })));
    s = await startSluice({
      execution: { backend: fake.url, maxAttempts: 1 },
      worker: { tickMs: 20 },
      ...(db === undefined ? {} : { store: db.location }),
    });
    return s;
  }

  async function submit(server: TestServer, lines: string[], dedup?: string) {
    const file = await server.client.files.create({
      file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "in.jsonl"),
      purpose: "batch",
    });
    const params = {
      input_file_id: file.id,
      endpoint: "/v1/chat/completions" as const,
      completion_window: "24h" as const,
    };
    return server.client.batches.create((dedup === undefined ? params : { ...params, dedup }) as typeof params);
  }

  async function linesOf(client: OpenAI, fileId: string | null | undefined): Promise<Line[]> {
    if (!fileId) return [];
    const text = await (await client.files.content(fileId)).text();
    return text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Line);
  }

  const contentOf = (l: Line) => l.response?.body.choices?.[0]?.message.content;

  it("1,000 lines over 100 deterministic bodies: 100 calls, 1,000 answers in input order, 900 merged", async () => {
    const server = await serve();
    const lines = Array.from({ length: 1000 }, (_, i) =>
      chatLine(`c-${i}`, `question ${i % 100}`, "test-model", { temperature: 0 }),
    );
    const created = await submit(server, lines);
    const done = await waitForStatus(server.client, created.id, ["completed", "failed"], 60_000);
    expect(done.request_counts).toEqual({ total: 1000, completed: 1000, failed: 0 });
    expect((done as unknown as DedupView).dedup).toEqual({ mode: "deterministic", merged: 900 });
    expect(fake?.calls).toHaveLength(100);
    const out = await linesOf(server.client, done.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(lines.map((_, i) => `c-${i}`));
    for (const [i, l] of out.entries()) {
      expect(contentOf(l)).toBe(expectedContent({ messages: [{ content: `question ${i % 100}` }] }));
      expect(l.merged_with).toBe(i < 100 ? undefined : `c-${i % 100}`);
    }
    // The batch's usage counts the tokens the engine processed: 100 calls, not 1,000 lines.
    const perCall = (i: number) => expectedContent({ messages: [{ content: `question ${i}` }] }).length;
    const input = Array.from({ length: 100 }, (_, i) => perCall(i)).reduce((a, b) => a + b, 0);
    expect(done.usage).toMatchObject({ input_tokens: input, output_tokens: 300 });
  });

  it("sampling lines are not merged by default; they are with dedup 'all'", async () => {
    const server = await serve();
    const lines = Array.from({ length: 40 }, (_, i) =>
      chatLine(`s-${i}`, `poem ${i % 4}`, "test-model", { temperature: 0.7 }),
    );
    const byDefault = await submit(server, lines);
    const first = await waitForStatus(server.client, byDefault.id, ["completed", "failed"]);
    expect(first.request_counts).toEqual({ total: 40, completed: 40, failed: 0 });
    expect((first as unknown as DedupView).dedup).toEqual({ mode: "deterministic", merged: 0 });
    expect(fake?.calls).toHaveLength(40);

    // Other custom_ids: the same ones would be a resubmission, answered by the reuse pass.
    const again = lines.map((l) => l.replace('"s-', '"a-'));
    const all = await submit(server, again, "all");
    const second = await waitForStatus(server.client, all.id, ["completed", "failed"]);
    expect(second.request_counts).toEqual({ total: 40, completed: 40, failed: 0 });
    expect((second as unknown as DedupView).dedup).toEqual({ mode: "all", merged: 36 });
    expect(fake?.calls).toHaveLength(44);
    const out = await linesOf(server.client, second.output_file_id);
    expect(out.map((l) => [l.custom_id, l.merged_with])).toEqual(
      lines.map((_, i) => [`a-${i}`, i < 4 ? undefined : `a-${i % 4}`]),
    );
  });

  it("dedup 'off' never merges, not even deterministic lines", async () => {
    const server = await serve();
    const lines = Array.from({ length: 30 }, (_, i) => chatLine(`o-${i}`, "same", "test-model", { seed: 7 }));
    const created = await submit(server, lines, "off");
    const done = await waitForStatus(server.client, created.id, ["completed", "failed"]);
    expect(done.request_counts).toEqual({ total: 30, completed: 30, failed: 0 });
    expect((done as unknown as DedupView).dedup).toEqual({ mode: "off", merged: 0 });
    expect(fake?.calls).toHaveLength(30);
  });

  it("a leader that fails with 400 fails its followers the same way", async () => {
    const server = await serve((call) =>
      expectedContent(call.body).includes("bad")
        ? { kind: "status", status: 400, body: { error: { message: "bad request", type: "invalid_request_error" } } }
        : { kind: "ok" },
    );
    const lines = Array.from({ length: 20 }, (_, i) =>
      chatLine(`f-${i}`, i % 2 === 0 ? "good" : "bad", "test-model", { temperature: 0 }),
    );
    const created = await submit(server, lines);
    const done = await waitForStatus(server.client, created.id, ["completed", "failed"]);
    expect(done.request_counts).toEqual({ total: 20, completed: 10, failed: 10 });
    expect(fake?.calls).toHaveLength(2);
    const errors = await linesOf(server.client, done.error_file_id);
    expect(errors.map((l) => [l.custom_id, l.response?.status_code, l.merged_with])).toEqual(
      Array.from({ length: 10 }, (_, k) => [`f-${2 * k + 1}`, 400, k === 0 ? undefined : "f-1"]),
    );
    expect(new Set(errors.map((l) => JSON.stringify(l.response?.body))).size).toBe(1);
  });

  it("cancel ends merged lines with their leader: every custom_id once, batch_cancelled", async () => {
    const server = await serve(() => ({ kind: "hang" }));
    const lines = Array.from({ length: 30 }, (_, i) =>
      chatLine(`x-${i}`, `slow ${i % 3}`, "test-model", { temperature: 0 }),
    );
    const created = await submit(server, lines);
    const end = Date.now() + 20_000;
    while ((fake?.calls.length ?? 0) < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(fake?.calls).toHaveLength(3);
    await server.client.batches.cancel(created.id);
    const done = await waitForStatus(server.client, created.id, ["cancelled"], 20_000);
    expect(done.request_counts).toEqual({ total: 30, completed: 0, failed: 30 });
    const errors = await linesOf(server.client, done.error_file_id);
    expect(errors.map((l) => [l.custom_id, l.error?.code, l.merged_with])).toEqual(
      lines.map((_, i) => [`x-${i}`, "batch_cancelled", undefined]),
    );
  });
});
