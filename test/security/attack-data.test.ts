/**
 * Regressions from an attack run on input validation:
 * - validation errors copied whole input values: 40 lines with a 2 MiB `url` made an 84 MB
 *   `errors` value, returned on every GET and stored in plaintext despite the master key;
 * - a body nested 100,000 levels made re-serializing it throw a RangeError, and the validation
 *   job restarted forever;
 * - every distinct model name stayed in the router's cache (2 MiB names: +400 MB RSS).
 */
import { randomBytes } from "node:crypto";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROUTE_CACHE_SIZE, Router } from "../../src/backends/router.js";
import { ingestBatchInput, MAX_ERRORS_BYTES } from "../../src/batch/ingest.js";
import { MAX_NESTING_DEPTH, nestsDeeperThan, validateLine } from "../../src/batch/line-validator.js";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { hitsUnder } from "../helpers/data-folder.js";
import { startSluice, type TestServer, waitForStatus } from "../helpers/server.js";
import { call } from "../helpers/tenants.js";

let s: TestServer;
beforeAll(async () => {
  // A backend nobody answers: every batch here must fail in validation.
  s = await startSluice({ masterKeys: parseMasterKeys(randomBytes(32).toString("base64"), "test") });
});
afterAll(async () => s?.close());

const ENDPOINT = "/v1/chat/completions";
const line = (fields: Record<string, unknown>) =>
  JSON.stringify({
    custom_id: "x",
    method: "POST",
    url: ENDPOINT,
    body: { model: "m", messages: [{ role: "user", content: "hi" }] },
    ...fields,
  });

type Errors = {
  data: { code: string; message: string; line: number | null; param: string | null }[];
  total_count: number;
};

async function runBatch(lines: string[]) {
  const file = await s.client.files.create({
    file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "attack.jsonl"),
    purpose: "batch",
  });
  const started = Date.now();
  const created = await s.client.batches.create({
    input_file_id: file.id,
    endpoint: ENDPOINT,
    completion_window: "24h",
  });
  const done = await waitForStatus(s.client, created.id, ["failed", "in_progress", "completed"], 30_000);
  if (done.status === "in_progress") await s.client.batches.cancel(done.id);
  return { done, seconds: (Date.now() - started) / 1000, errors: done.errors as unknown as Errors };
}

describe("validation errors never copy input values", () => {
  it("fails the 2 MiB-url batch promptly with small errors, and no bad value reaches the data folder", async () => {
    const marker = `URL-MARKER-${randomBytes(6).toString("hex")}`;
    const big = `${marker}${"u".repeat(2 * 1024 ** 2)}${marker}`;
    const dupId = `DUP-ID-${randomBytes(6).toString("hex")}`;
    const lines = [
      ...Array.from({ length: 40 }, (_, i) => line({ custom_id: `u-${i}`, url: big })),
      line({ custom_id: "m-1", method: `${marker}${"m".repeat(2 * 1024 ** 2)}` }),
      line({ custom_id: dupId }),
      line({ custom_id: dupId }),
    ];
    const rssBefore = process.memoryUsage().rss;
    const { done, seconds, errors } = await runBatch(lines);
    expect(done.status).toBe("failed");
    expect(seconds).toBeLessThan(20);
    expect(errors.total_count).toBe(42);
    expect(errors.data.map((e) => e.code)).toEqual([
      ...Array.from({ length: 40 }, () => "url_mismatch"),
      "invalid_method",
      "duplicate_custom_id",
    ]);
    for (const e of errors.data) expect(JSON.stringify(e).length).toBeLessThan(400);
    expect(errors.data[0]?.message).toContain(`got a string of ${big.length} characters`); // a length, not the value
    expect(errors.data[41]?.message).toBe("Duplicate custom_id (first seen on line 42).");

    const one = await call(s, s.apiKey, "GET", `/batches/${done.id}`);
    const list = await call(s, s.apiKey, "GET", "/batches?limit=100");
    expect(one.text.length).toBeLessThan(32 * 1024);
    expect(list.text.length).toBeLessThan(64 * 1024);
    for (const body of [one.text, list.text]) {
      expect(body).not.toContain(marker);
      expect(body).not.toContain(dupId);
    }
    const row = await s.runtime.ctx.store.db
      .selectFrom("batches")
      .select("errors")
      .where("id", "=", done.id)
      .executeTakeFirstOrThrow();
    expect(row.errors).not.toContain(marker);
    // The bad values are in the uploaded file only, which is encrypted: not one copy in plaintext.
    expect(await hitsUnder(s.dataDir, [marker])).toEqual([]);
    process.stdout.write(
      `2 MiB-url batch: failed in ${seconds.toFixed(2)} s; GET ${one.text.length} B, list ${list.text.length} B; ` +
        `RSS ${Math.round(rssBefore / 2 ** 20)} → ${Math.round(process.memoryUsage().rss / 2 ** 20)} MB\n`,
    );
  }, 60_000);

  it("keeps 1,000 of the longest messages a line can produce under the byte cap", async () => {
    const lines = Array.from({ length: 1200 }, (_, i) => line({ custom_id: `c-${i}`, url: "u".repeat(5000) }));
    const { errors } = await runBatch(lines);
    expect(errors.total_count).toBe(1200);
    expect(errors.data).toHaveLength(1000);
    expect(JSON.stringify(errors).length).toBeLessThan(MAX_ERRORS_BYTES);
  });

  it("stops keeping errors at the byte cap, still counting them all", async () => {
    const { store, blobs } = s.runtime.ctx;
    const file = await s.client.files.create({
      file: await toFile(Buffer.from(Array.from({ length: 100 }, () => "nope").join("\n")), "bad.jsonl"),
      purpose: "batch",
    });
    const row = await store.db
      .selectFrom("files")
      .select("blob_key")
      .where("id", "=", file.id)
      .executeTakeFirstOrThrow();
    const target = { tenantId: "default", batchId: "batch_bytecap", endpoint: ENDPOINT, blobKey: row.blob_key };
    const result = await ingestBatchInput(store, blobs, target, {
      maxLineBytes: 1024,
      maxLines: 1000,
      maxErrorsKept: 1000,
      maxErrorsBytes: 1000,
    });
    if (result.ok) throw new Error("expected a failure");
    expect(result.errorCount).toBe(100);
    expect(result.errors.length).toBeGreaterThan(5);
    expect(result.errors.length).toBeLessThan(20);
    expect(JSON.stringify(result.errors).length).toBeLessThanOrEqual(1000);
  });
});

describe("nesting depth", () => {
  it("fails a line nested 100,000 levels with nesting_too_deep, quickly", async () => {
    const deep = `{"custom_id":"deep","method":"POST","url":"${ENDPOINT}","body":{"model":"m","x":${"[".repeat(100_000)}${"]".repeat(100_000)}}}`;
    // 100 levels is a legitimate (if odd) request: accepted.
    const ok = line({ custom_id: "ok", body: { model: "m", x: JSON.parse(`${"[".repeat(100)}${"]".repeat(100)}`) } });
    const { done, seconds, errors } = await runBatch([ok, deep]);
    expect(done.status).toBe("failed");
    expect(seconds).toBeLessThan(10);
    expect(errors.data.map((e) => [e.line, e.code])).toEqual([[2, "nesting_too_deep"]]);
    expect(errors.data[0]?.message).toContain(String(MAX_NESTING_DEPTH));
  });

  it("counts depth on the bytes, ignoring brackets inside strings", () => {
    const at = (n: number) => Buffer.from(`${"[".repeat(n)}${"]".repeat(n)}`);
    expect(nestsDeeperThan(at(128), 128)).toBe(false);
    expect(nestsDeeperThan(at(129), 128)).toBe(true);
    expect(nestsDeeperThan(at(1_000_000), 128)).toBe(true);
    const inString = Buffer.from(JSON.stringify({ s: `\\"${"[{".repeat(1000)}` }));
    expect(nestsDeeperThan(inString, 128)).toBe(false);
    const wide = Buffer.from(JSON.stringify(Array.from({ length: 1000 }, () => [{}])));
    expect(nestsDeeperThan(wide, 128)).toBe(false);
    expect(validateLine(at(200), ENDPOINT)).toMatchObject({ ok: false, code: "nesting_too_deep" });
  });
});

describe("model names", () => {
  it("refuses model names over 256 characters with invalid_model", async () => {
    const lines = [
      line({ custom_id: "a", body: { model: "m".repeat(256) } }),
      line({ custom_id: "b", body: { model: "m".repeat(257) } }),
      line({ custom_id: "c", body: { model: "m".repeat(2 * 1024 ** 2) } }),
    ];
    const { errors } = await runBatch(lines);
    expect(errors.data.map((e) => [e.line, e.code, e.param])).toEqual([
      [2, "invalid_model", "body.model"],
      [3, "invalid_model", "body.model"],
    ]);
  });

  it("keeps a bounded route cache whatever the number of model names, and still routes", () => {
    let created = 0;
    const router = new Router(
      [
        { patterns: ["gpt-*"], backends: [{ engine: "openai", url: "http://127.0.0.1:9/v1" }] },
        { patterns: ["llama-?"], backends: [{ engine: "openai", url: "http://127.0.0.1:9/v1" }] },
      ],
      async () => {
        created++;
        throw new Error("not used");
      },
    );
    for (let i = 0; i < 20 * ROUTE_CACHE_SIZE; i++) {
      expect(router.hasRoute(`gpt-${i}`)).toBe(true);
      expect(router.hasRoute(`other-${i}`)).toBe(false);
      expect(router.hasRoute("llama-3")).toBe(true); // the hot name
      expect(router.cachedModels).toBeLessThanOrEqual(ROUTE_CACHE_SIZE);
    }
    expect(router.cachedModels).toBe(ROUTE_CACHE_SIZE);
    expect(router.hasRoute("gpt-0")).toBe(true); // evicted, found again
    expect(router.hasRoute("llama-x")).toBe(true);
    expect(router.hasRoute("llama-xx")).toBe(false);
    expect(created).toBe(0);
  });
});
