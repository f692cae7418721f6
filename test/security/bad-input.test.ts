/**
 * Malformed files and requests, each answered clearly (the OpenAI error envelope with the right
 * status, or a failed batch whose errors carry line numbers), with the server healthy after each
 * and its memory bounded. One server for all cases; a worker validates the batch inputs.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";
import { call, type RawResponse } from "../helpers/tenants.js";

const KiB = 1024;
const MiB = 1024 * KiB;
let s: TestServer;
let baseline = 0;
let peak = 0;

beforeAll(async () => {
  s = await startSluice({
    limits: { maxFileBytes: 1 * MiB, maxLineBytes: 64 * KiB, rateLimitBurst: 100_000 },
  });
  baseline = process.memoryUsage().rss;
});
afterAll(async () => s?.close());

const req = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  call(s, s.apiKey, method, path, body, headers);

function expectError(
  res: RawResponse,
  status: number,
  match: { code?: string; param?: string | null; type?: string } = {},
) {
  expect(res.status, res.text.slice(0, 300)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/application\/json/);
  expect(res.json.error).toBeDefined();
  expect(typeof res.json.error?.message).toBe("string");
  expect(res.json.error?.message.length).toBeGreaterThan(0);
  expect(res.json.error).toMatchObject(match);
  expect(res.headers.get("x-request-id")).toMatch(/^req_/);
}

function form(content: Buffer | string, fields: Record<string, string> = { purpose: "batch" }, name = "in.jsonl") {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  f.append("file", new Blob([content]), name);
  return f;
}

async function uploadRaw(content: Buffer | string, name = "in.jsonl"): Promise<string> {
  const res = await req("POST", "/files", form(content, { purpose: "batch" }, name));
  expect(res.status, res.text).toBe(200);
  return res.json.id as string;
}

const batchBody = (input_file_id: string, extra: Record<string, unknown> = {}) => ({
  input_file_id,
  endpoint: "/v1/chat/completions",
  completion_window: "24h",
  ...extra,
});

/** Uploads `content`, creates a batch, and expects it to fail with these (line, code) errors. */
async function expectFailedBatch(content: Buffer | string, expected: { line: number | null; code: string }[]) {
  const fileId = await uploadRaw(content);
  const created = await req("POST", "/batches", batchBody(fileId));
  expect(created.status, created.text).toBe(200);
  const b = await waitForStatus(s.client, created.json.id as string, ["failed", "completed", "in_progress"]);
  expect(b.status).toBe("failed");
  const errors = (b.errors?.data ?? []).map((e) => ({ line: e.line ?? null, code: e.code }));
  expect(errors).toEqual(expect.arrayContaining(expected.map((e) => expect.objectContaining(e))));
  for (const e of b.errors?.data ?? []) expect(e.message).toBeTruthy();
}

const good = (id: string, content = "hi") => chatLine(id, content);
const lines = (...l: string[]) => `${l.join("\n")}\n`;
const ok = { custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [] } };

const CASES: [string, () => Promise<void>][] = [
  // ── uploads ───────────────────────────────────────────────────────────────────────
  ["upload as JSON instead of multipart", async () => expectError(await req("POST", "/files", { file: "x" }), 415)],
  [
    "upload as text/plain",
    async () => expectError(await req("POST", "/files", "hello", { "content-type": "text/plain" }), 415),
  ],
  [
    "multipart without a file part",
    async () => {
      const f = new FormData();
      f.append("purpose", "batch");
      expectError(await req("POST", "/files", f), 400, { param: "file" });
    },
  ],
  [
    "multipart without purpose",
    async () => expectError(await req("POST", "/files", form("x", {})), 400, { param: "purpose" }),
  ],
  [
    "unknown purpose",
    async () => expectError(await req("POST", "/files", form("x", { purpose: "nonsense" })), 400, { param: "purpose" }),
  ],
  [
    "purpose longer than a field may be",
    async () =>
      expectError(await req("POST", "/files", form("x", { purpose: "b".repeat(10_000) })), 400, { param: "purpose" }),
  ],
  [
    "two file parts",
    async () => {
      const f = form("a");
      f.append("file", new Blob(["b"]), "second.jsonl");
      const res = await req("POST", "/files", f);
      expect([400, 413]).toContain(res.status);
      expectError(res, res.status);
    },
  ],
  [
    "file sent under another field name",
    async () => {
      const f = new FormData();
      f.append("purpose", "batch");
      f.append("upload", new Blob(["x"]), "a.jsonl");
      expectError(await req("POST", "/files", f), 400);
    },
  ],
  [
    "too many form fields",
    async () => {
      const fields: Record<string, string> = { purpose: "batch" };
      for (let i = 0; i < 40; i++) fields[`f${i}`] = "x";
      expectError(await req("POST", "/files", form("x", fields)), 413);
    },
  ],
  [
    "truncated multipart body",
    async () => {
      const body = `--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{"a":`;
      expectError(await req("POST", "/files", body, { "content-type": "multipart/form-data; boundary=XyZ" }), 400);
    },
  ],
  [
    "multipart body that is not multipart at all",
    async () => {
      const res = await req("POST", "/files", randomBytes(4096), {
        "content-type": "multipart/form-data; boundary=XyZ",
      });
      expectError(res, 400);
    },
  ],
  [
    "multipart without a boundary",
    async () => {
      const res = await req("POST", "/files", "abc", { "content-type": "multipart/form-data" });
      expect([400, 415]).toContain(res.status);
      expectError(res, res.status);
    },
  ],
  [
    "oversized file (8 MiB over a 1 MiB limit)",
    async () => {
      const res = await req("POST", "/files", form(Buffer.alloc(8 * MiB, 0x61)));
      expectError(res, 413, { code: "payload_too_large", param: "file" });
      const files = await req("GET", "/files?limit=100");
      expect((files.json.data as { bytes: number }[]).every((f) => f.bytes <= MiB)).toBe(true);
    },
  ],
  [
    "expires_after[seconds] out of range",
    async () =>
      expectError(
        await req(
          "POST",
          "/files",
          form("x", { purpose: "batch", "expires_after[anchor]": "created_at", "expires_after[seconds]": "5" }),
        ),
        400,
        { param: "expires_after.seconds" },
      ),
  ],
  [
    "expires_after[anchor] not created_at",
    async () =>
      expectError(
        await req(
          "POST",
          "/files",
          form("x", { purpose: "batch", "expires_after[anchor]": "now", "expires_after[seconds]": "3600" }),
        ),
        400,
        { param: "expires_after.anchor" },
      ),
  ],
  [
    "file name with path traversal is stored as a base name",
    async () => {
      const res = await req("POST", "/files", form("x", { purpose: "batch" }, "../../../etc/passwd"));
      expect(res.status).toBe(200);
      expect(res.json.filename).toBe("passwd");
    },
  ],
  [
    "file name with quotes, control characters and non-ASCII downloads safely",
    async () => {
      const res = await req("POST", "/files", form("x", { purpose: "batch" }, 'a"\u0001b\\c données.jsonl'));
      expect(res.status).toBe(200);
      expect(res.json.filename).not.toMatch(/["\u0001]/);
      const dl = await req("GET", `/files/${res.json.id}/content`);
      expect(dl.status).toBe(200);
      expect(dl.headers.get("content-disposition")).toMatch(/^attachment; filename="[^"]*"; filename\*=UTF-8''/);
    },
  ],
  // ── batch creation ────────────────────────────────────────────────────────────────
  [
    "invalid JSON body",
    async () => expectError(await req("POST", "/batches", "{not json", { "content-type": "application/json" }), 400),
  ],
  [
    "empty JSON body",
    async () => expectError(await req("POST", "/batches", "", { "content-type": "application/json" }), 400),
  ],
  ["JSON array body", async () => expectError(await req("POST", "/batches", [1, 2]), 400)],
  [
    "JSON null body",
    async () => expectError(await req("POST", "/batches", "null", { "content-type": "application/json" }), 400),
  ],
  [
    "missing input_file_id",
    async () =>
      expectError(await req("POST", "/batches", { endpoint: "/v1/chat/completions", completion_window: "24h" }), 400, {
        param: "input_file_id",
      }),
  ],
  [
    "unsupported endpoint",
    async () =>
      expectError(await req("POST", "/batches", batchBody("file-x", { endpoint: "/v1/images/generations" })), 400, {
        param: "endpoint",
      }),
  ],
  [
    "bad completion_window",
    async () =>
      expectError(
        await req("POST", "/batches", batchBody(await uploadRaw(lines(good("a"))), { completion_window: "forever" })),
        400,
        {
          param: "completion_window",
        },
      ),
  ],
  [
    "unknown input file",
    async () =>
      expectError(await req("POST", "/batches", batchBody("file-doesnotexist")), 400, { code: "invalid_input_file" }),
  ],
  [
    "input file with the wrong purpose",
    async () => {
      const res = await req("POST", "/files", form(lines(good("a")), { purpose: "user_data" }));
      expectError(await req("POST", "/batches", batchBody(res.json.id as string)), 400, { code: "invalid_input_file" });
    },
  ],
  [
    "metadata with 17 keys",
    async () => {
      const metadata = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"]));
      expectError(await req("POST", "/batches", batchBody("file-x", { metadata })), 400, { param: "metadata" });
    },
  ],
  [
    "metadata value over 512 characters",
    async () =>
      expectError(await req("POST", "/batches", batchBody("file-x", { metadata: { k: "v".repeat(513) } })), 400),
  ],
  [
    "metadata that is not an object",
    async () =>
      expectError(await req("POST", "/batches", batchBody("file-x", { metadata: "tags" })), 400, { param: "metadata" }),
  ],
  [
    "JSON body over the size limit",
    async () => expectError(await req("POST", "/batches", batchBody("file-x", { pad: "x".repeat(2 * MiB) })), 413),
  ],
  [
    "batch created with text/plain",
    async () =>
      expectError(
        await req("POST", "/batches", JSON.stringify(batchBody("file-x")), { "content-type": "text/plain" }),
        415,
      ),
  ],
  [
    "prototype-poisoning body",
    async () =>
      expectError(
        await req("POST", "/batches", '{"__proto__":{"admin":true},"input_file_id":"x"}', {
          "content-type": "application/json",
        }),
        400,
      ),
  ],
  // ── batch input lines (failed batches, errors with line numbers) ─────────────────
  [
    "invalid JSON on line 2",
    async () =>
      expectFailedBatch(lines(good("a"), '{"custom_id": "b", oops}', good("c")), [
        { line: 2, code: "invalid_json_line" },
      ]),
  ],
  [
    "invalid UTF-8 on line 1",
    async () =>
      expectFailedBatch(
        Buffer.concat([Buffer.from('{"custom_id":"\xff'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]),
        [{ line: 1, code: "invalid_utf8" }],
      ),
  ],
  [
    "a line over the line size limit",
    async () =>
      expectFailedBatch(lines(good("a"), good("b", "x".repeat(100 * KiB))), [{ line: 2, code: "line_too_large" }]),
  ],
  [
    "binary data",
    async () => {
      const bin = randomBytes(256 * KiB);
      const fileId = await uploadRaw(bin, "blob.bin");
      const created = await req("POST", "/batches", batchBody(fileId));
      const b = await waitForStatus(s.client, created.json.id as string, ["failed", "completed"]);
      expect(b.status).toBe("failed");
      expect(b.errors?.data?.length).toBeGreaterThan(0);
      for (const e of b.errors?.data ?? []) expect(e.line === null || typeof e.line === "number").toBe(true);
    },
  ],
  [
    "duplicate custom_id",
    async () => expectFailedBatch(lines(good("a"), good("b"), good("a")), [{ line: 3, code: "duplicate_custom_id" }]),
  ],
  [
    "line url does not match the batch endpoint",
    async () =>
      expectFailedBatch(lines(good("a"), JSON.stringify({ ...ok, custom_id: "b", url: "/v1/embeddings" })), [
        { line: 2, code: "url_mismatch" },
      ]),
  ],
  [
    "stream: true",
    async () =>
      expectFailedBatch(lines(chatLine("a", "hi", "m", { stream: true })), [{ line: 1, code: "stream_unsupported" }]),
  ],
  [
    "missing custom_id",
    async () =>
      expectFailedBatch(lines(good("a"), JSON.stringify({ ...ok, custom_id: undefined })), [
        { line: 2, code: "missing_custom_id" },
      ]),
  ],
  [
    "missing body.model",
    async () =>
      expectFailedBatch(lines(JSON.stringify({ ...ok, body: { messages: [] } })), [{ line: 1, code: "missing_model" }]),
  ],
  [
    "method GET",
    async () =>
      expectFailedBatch(lines(JSON.stringify({ ...ok, method: "GET" })), [{ line: 1, code: "invalid_method" }]),
  ],
  [
    "line that is a JSON array",
    async () => expectFailedBatch(lines("[1,2,3]"), [{ line: 1, code: "invalid_json_line" }]),
  ],
  ["empty file", async () => expectFailedBatch("", [{ line: null, code: "empty_file" }])],
  ["only blank lines", async () => expectFailedBatch("\n  \n\t\n", [{ line: null, code: "empty_file" }])],
  [
    "many bad lines: all counted, errors bounded",
    async () => {
      const bad = Array.from({ length: 3000 }, () => "nope");
      const fileId = await uploadRaw(lines(...bad));
      const created = await req("POST", "/batches", batchBody(fileId));
      const b = await waitForStatus(s.client, created.json.id as string, ["failed"]);
      expect(b.errors?.data?.length).toBeLessThanOrEqual(1000);
      expect((b.errors as unknown as { total_count: number }).total_count).toBe(3000);
    },
  ],
  // ── ids, paths, pagination, auth ─────────────────────────────────────────────────
  [
    "unknown file id",
    async () => expectError(await req("GET", "/files/file-unknown"), 404, { type: "not_found_error" }),
  ],
  [
    "unknown batch id",
    async () => expectError(await req("GET", "/batches/batch_unknown"), 404, { type: "not_found_error" }),
  ],
  [
    "id with traversal characters: a non-canonical path is refused before any route (400 invalid_url)",
    async () => {
      const traversal = await req("GET", "/files/..%2F..%2Fetc%2Fpasswd/content");
      expectError(traversal, 400);
      expect(traversal.json.error?.code).toBe("invalid_url");
      expectError(await req("GET", "/batches/%00%01"), 400);
    },
  ],
  ["id of 10,000 characters", async () => expectError(await req("GET", `/files/file-${"a".repeat(10_000)}`), 404)],
  [
    "cancel and delete unknown batches",
    async () => {
      expectError(await req("POST", "/batches/batch_nope/cancel"), 404);
      expectError(await req("DELETE", "/batches/batch_nope"), 404);
      expectError(await req("DELETE", "/files/file-nope"), 404);
    },
  ],
  [
    "bad pagination parameters",
    async () => {
      for (const q of ["limit=0", "limit=abc", "limit=100000", "order=sideways", "limit=-5", "limit=1.5"]) {
        expectError(await req("GET", `/files?${q}`), 400);
      }
      for (const q of ["limit=0", "limit=101", "limit=x"])
        expectError(await req("GET", `/batches?${q}`), 400, { param: "limit" });
      expectError(await req("GET", `/batches?after=${"x".repeat(500)}`), 400, { param: "after" });
    },
  ],
  [
    "unknown output type",
    async () => {
      const b = (await req("GET", "/batches?limit=1")).json.data as { id: string }[];
      expectError(await req("GET", `/batches/${b[0]?.id ?? "batch_x"}/output?type=bogus`), 400, { param: "type" });
    },
  ],
  [
    "wrong endpoint and wrong method",
    async () => {
      expectError(await req("GET", "/nope"), 404, { code: "unknown_url" });
      expectError(await req("PUT", "/files"), 404, { code: "unknown_url" });
      expectError(await req("POST", "/chat/completions", { model: "m" }), 404, { code: "unknown_url" });
    },
  ],
  [
    "missing, malformed and oversized credentials",
    async () => {
      expectError(await call(s, undefined, "GET", "/files"), 401, { type: "authentication_error" });
      expectError(await call(s, undefined, "GET", "/files", undefined, { authorization: "Basic abc" }), 401);
      expectError(await call(s, "x".repeat(5000), "GET", "/files"), 401);
      expectError(await call(s, "sk-sluice-wrong", "GET", "/files"), 401);
    },
  ],
  [
    "admin request bodies are validated",
    async () => {
      expectError(await req("POST", "/admin/keys", { tenant: "../etc" }), 400, { param: "tenant" });
      expectError(await req("PUT", "/admin/tenants/default/limits", { max_file_bytes: "big" }), 400);
    },
  ],
];

describe("bad input", () => {
  it("has at least 40 cases", () => expect(CASES.length).toBeGreaterThanOrEqual(40));

  it.each(CASES)("%s", async (_name, run) => {
    await run();
    const health = await fetch(`${s.baseURL.replace(/\/v1$/, "")}/health`);
    expect(health.status).toBe(200);
    peak = Math.max(peak, process.memoryUsage().rss - baseline);
  });

  it("kept memory bounded and the server usable throughout", async () => {
    expect(peak).toBeLessThan(256 * MiB);
    const fileId = await uploadRaw(lines(good("fine")));
    expect((await req("POST", "/batches", batchBody(fileId))).status).toBe(200);
  });
});
