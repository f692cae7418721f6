import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLines } from "../../src/batch/line-reader.js";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";

let s: TestServer;
beforeAll(async () => {
  // A backend nobody answers: these tests look at validation only, and cancel what starts.
  s = await startSluice({ limits: { maxLineBytes: 4096 } });
});
afterAll(async () => s.close());

async function validate(content: string | Buffer) {
  const file = await s.client.files.create({ file: await toFile(Buffer.from(content), "in.jsonl"), purpose: "batch" });
  const b = await s.client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  const done = await waitForStatus(s.client, b.id, ["failed", "in_progress", "completed"]);
  if (done.status === "in_progress") await s.client.batches.cancel(b.id);
  return done;
}

const errorsOf = (b: { errors?: { data?: { code?: string; line?: number | null }[] } | null }) =>
  (b.errors?.data ?? []).map((e) => [e.line, e.code]);

describe("input validation", () => {
  it("reports every invalid line with its line number and reason", async () => {
    const lines = [
      chatLine("ok-1", "fine"), // 1
      "{not json", // 2
      JSON.stringify({ method: "POST", url: "/v1/chat/completions", body: { model: "m" } }), // 3 missing custom_id
      JSON.stringify({ custom_id: 7, method: "POST", url: "/v1/chat/completions", body: { model: "m" } }), // 4
      JSON.stringify({ custom_id: "g", method: "GET", url: "/v1/chat/completions", body: { model: "m" } }), // 5
      JSON.stringify({ custom_id: "u", method: "POST", url: "/v1/embeddings", body: { model: "m" } }), // 6
      JSON.stringify({ custom_id: "b", method: "POST", url: "/v1/chat/completions", body: [1] }), // 7
      JSON.stringify({ custom_id: "m", method: "POST", url: "/v1/chat/completions", body: { messages: [] } }), // 8
      chatLine("st", "x", "m", { stream: true }), // 9
      chatLine("ok-1", "duplicate"), // 10
      chatLine("big", "x".repeat(5000)), // 11
      "[1,2,3]", // 12
    ];
    const b = await validate(lines.join("\n"));
    expect(b.status).toBe("failed");
    expect(b.failed_at).toBeGreaterThan(0);
    expect(errorsOf(b)).toEqual([
      [2, "invalid_json_line"],
      [3, "missing_custom_id"],
      [4, "invalid_custom_id"],
      [5, "invalid_method"],
      [6, "url_mismatch"],
      [7, "invalid_body"],
      [8, "missing_model"],
      [9, "stream_unsupported"],
      [11, "line_too_large"],
      [12, "invalid_json_line"],
      [10, "duplicate_custom_id"],
    ]);
    const dup = b.errors?.data?.find((e) => e.code === "duplicate_custom_id");
    expect(dup?.message).toContain("first seen on line 1");
    expect((b.errors as unknown as { total_count: number }).total_count).toBe(11);
    expect(b.request_counts?.total ?? 0).toBe(0);
  });

  it("rejects an empty file and a file of only blank lines", async () => {
    expect(errorsOf(await validate(""))).toEqual([[null, "empty_file"]]);
    expect(errorsOf(await validate("\n  \n\r\n"))).toEqual([[null, "empty_file"]]);
  });

  it("rejects invalid UTF-8 with the line number", async () => {
    const bad = Buffer.concat([Buffer.from(`${chatLine("a", "x")}\n`), Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a])]);
    expect(errorsOf(await validate(bad))).toEqual([[2, "invalid_utf8"]]);
  });

  it("accepts CRLF, a BOM, blank lines and a missing final newline", async () => {
    const content = `\uFEFF${chatLine("a", "x")}\r\n\r\n${chatLine("b", "y")}\r\n   \n${chatLine("c", "z")}`;
    const b = await validate(content);
    expect(b.status).not.toBe("failed");
    expect(b.request_counts?.total).toBe(3);
    const rows = await s.runtime.ctx.store.db
      .selectFrom("requests")
      .select(["line", "custom_id"])
      .where("batch_id", "=", b.id)
      .orderBy("line")
      .execute();
    // Line numbers count physical lines, blank ones included.
    expect(rows).toEqual([
      { line: 1, custom_id: "a" },
      { line: 3, custom_id: "b" },
      { line: 5, custom_id: "c" },
    ]);
  });

  it("caps the kept errors but counts them all", async () => {
    const lines = Array.from({ length: 1500 }, () => "nope");
    const b = await validate(lines.join("\n"));
    expect(b.errors?.data).toHaveLength(1000);
    expect((b.errors as unknown as { total_count: number }).total_count).toBe(1500);
  });

  it("ingests a 100k-line file", async () => {
    const n = 100_000;
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(chatLine(`id-${i}`, `p${i}`, i % 2 === 0 ? "model-a" : "model-b"));
    const b = await validate(`${parts.join("\n")}\n`);
    expect(b.status).not.toBe("failed");
    expect(b.request_counts?.total).toBe(n);
    expect(b.model).toBeNull(); // several models in one file are allowed
    const count = await s.runtime.ctx.store.db
      .selectFrom("requests")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("batch_id", "=", b.id)
      .executeTakeFirstOrThrow();
    expect(Number(count.n)).toBe(n);
  });
});

describe("line reader", () => {
  async function collect(chunks: (string | Buffer)[], max = 100) {
    const out = [];
    for await (const l of readLines(
      chunks.map((c) => Buffer.from(c)),
      max,
    )) {
      out.push(l.kind === "text" ? [l.line, l.bytes.toString()] : [l.line, `oversized:${l.size}`]);
    }
    return out;
  }
  it("splits across chunk boundaries, strips CR and the BOM", async () => {
    expect(await collect(["\uFEFFab", "c\r", "\nde", "f\n", "g"])).toEqual([
      [1, "abc"],
      [2, "def"],
      [3, "g"],
    ]);
  });
  it("flags oversized lines without buffering them, then carries on", async () => {
    expect(await collect(["x".repeat(60), "x".repeat(60), "\nok\n"], 100)).toEqual([
      [1, "oversized:120"],
      [2, "ok"],
    ]);
  });
});
