/**
 * Per-tenant limits are enforced when objects are created, with a clear 4xx (never a batch that
 * fails later), and the per-key rate limit answers 429 with retry-after in the OpenAI envelope.
 * No worker runs here: created batches stay unfinished, so they count against the limits.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatLine, startSluice, type TestServer } from "../helpers/server.js";
import { call, jsonlFile, type TenantKey, tenantKey } from "../helpers/tenants.js";

let s: TestServer;
let admin: TenantKey;

beforeAll(async () => {
  s = await startSluice({ worker: false });
  admin = await tenantKey(s, "ops", true);
});
afterAll(async () => s?.close());

const lines = (n: number, tag: string) => Array.from({ length: n }, (_, i) => chatLine(`${tag}-${i}`, `${tag} ${i}`));

async function upload(t: TenantKey, n: number, tag: string): Promise<string> {
  const res = await call(s, t.key, "POST", "/files", jsonlFile(lines(n, tag)));
  expect(res.status).toBe(200);
  return res.json.id as string;
}

const create = (t: TenantKey, fileId: string) =>
  call(s, t.key, "POST", "/batches", {
    input_file_id: fileId,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });

async function setLimits(tenant: string, limits: Record<string, number | null>) {
  const res = await call(s, admin.key, "PUT", `/admin/tenants/${tenant}/limits`, limits);
  expect(res.status).toBe(200);
  return res.json;
}

describe("per-tenant limits", () => {
  it("counts lines and estimates tokens while the upload streams", async () => {
    const t = await tenantKey(s, "counting");
    const id = await upload(t, 3, "c");
    const row = await s.runtime.ctx.store.db
      .selectFrom("files")
      .selectAll()
      .where("id", "=", id)
      .executeTakeFirstOrThrow();
    expect(row.line_count).toBe(3);
    expect(row.token_estimate).toBeGreaterThan(3 * 20);
  });

  it("rejects an upload over the tenant's file size limit with 413", async () => {
    const t = await tenantKey(s, "small-files");
    await setLimits("small-files", { max_file_bytes: 500 });
    const res = await call(s, t.key, "POST", "/files", jsonlFile(lines(10, "big")));
    expect(res.status).toBe(413);
    expect(res.json.error).toMatchObject({ code: "payload_too_large", type: "invalid_request_error" });
    expect((await call(s, t.key, "GET", "/files")).json.data).toEqual([]);
    await upload(t, 1, "ok");
  });

  it("rejects a batch over the lines limit when it is created", async () => {
    const t = await tenantKey(s, "few-lines");
    await setLimits("few-lines", { max_batch_lines: 2 });
    const res = await create(t, await upload(t, 3, "l"));
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: "too_many_tasks", param: "input_file_id" });
    expect((await create(t, await upload(t, 2, "l2"))).status).toBe(200);
  });

  it("limits concurrent batches (429, not retried by SDKs) until one ends", async () => {
    const t = await tenantKey(s, "one-at-a-time");
    await setLimits("one-at-a-time", { max_concurrent_batches: 1 });
    const file = await upload(t, 1, "cc");
    const first = await create(t, file);
    expect(first.status).toBe(200);
    const second = await create(t, file);
    expect(second.status).toBe(429);
    expect(second.headers.get("x-should-retry")).toBe("false");
    expect(second.json.error).toMatchObject({ code: "concurrent_batch_limit_exceeded", type: "rate_limit_error" });
    // Another tenant is not affected.
    const other = await tenantKey(s, "unaffected");
    expect((await create(other, await upload(other, 1, "u"))).status).toBe(200);
    // An ended batch frees the slot.
    await s.runtime.ctx.store.db
      .updateTable("batches")
      .set({ status: "completed" })
      .where("id", "=", first.json.id as string)
      .execute();
    expect((await create(t, file)).status).toBe(200);
  });

  it("limits estimated enqueued tokens", async () => {
    const t = await tenantKey(s, "token-capped");
    const small = await upload(t, 2, "tok");
    const est = Number(
      (
        await s.runtime.ctx.store.db
          .selectFrom("files")
          .select("token_estimate")
          .where("id", "=", small)
          .executeTakeFirstOrThrow()
      ).token_estimate,
    );
    await setLimits("token-capped", { max_enqueued_tokens: est + Math.floor(est / 2) });
    expect((await create(t, small)).status).toBe(200);
    const over = await create(t, small);
    expect(over.status).toBe(429);
    expect(over.json.error?.code).toBe("token_limit_exceeded");
    const huge = await create(t, await upload(t, 4, "tok-big"));
    expect(huge.status).toBe(400);
    expect(huge.json.error?.code).toBe("token_limit_exceeded");
  });

  it("clears an override with null, and validates limit bodies", async () => {
    const cleared = await setLimits("few-lines", { max_batch_lines: null });
    expect((cleared.limits as Record<string, unknown>).max_batch_lines).toBeNull();
    const bad = await call(s, admin.key, "PUT", "/admin/tenants/few-lines/limits", { max_batch_lines: -1 });
    expect(bad.status).toBe(400);
    const unknown = await call(s, admin.key, "PUT", "/admin/tenants/nobody/limits", { max_batch_lines: 1 });
    expect(unknown.status).toBe(404);
  });

  it("refuses to delete a batch that has not ended", async () => {
    const t = await tenantKey(s, "deleter");
    const b = await create(t, await upload(t, 1, "d"));
    const res = await call(s, t.key, "DELETE", `/batches/${b.json.id}`);
    expect(res.status).toBe(409);
    expect(res.json.error?.code).toBe("batch_not_ended");
  });
});

describe("rate limit", () => {
  let r: TestServer;
  beforeAll(async () => {
    // A bucket of 3 that refills once in ~17 minutes: no test here can depend on the clock.
    r = await startSluice({ worker: false, limits: { rateLimitPerSecond: 0.001, rateLimitBurst: 3 } });
  });
  afterAll(async () => r?.close());

  it("answers 429 with retry-after once a key's bucket is empty; other keys are unaffected", async () => {
    const a = await tenantKey(r, "rl-a");
    const b = await tenantKey(r, "rl-b");
    for (let i = 0; i < 3; i++) expect((await call(r, a.key, "GET", "/batches")).status).toBe(200);
    const limited = await call(r, a.key, "GET", "/batches");
    expect(limited.status).toBe(429);
    expect(limited.json.error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(Number(limited.headers.get("retry-after-ms"))).toBeGreaterThan(0);
    expect((await call(r, b.key, "GET", "/batches")).status).toBe(200);
    // Health checks are never limited.
    expect((await fetch(`${r.baseURL.replace(/\/v1$/, "")}/health`)).status).toBe(200);
  });
});
