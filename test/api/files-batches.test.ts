import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";

let s: TestServer;
beforeAll(async () => {
  // No worker: batches stay where the API leaves them, except validation which needs one.
  s = await startSluice({ worker: { tickMs: 50 } });
});
afterAll(async () => s.close());

const jsonl = (lines: string[]) => `${lines.join("\n")}\n`;

describe("Files API through the official SDK", () => {
  it("uploads, retrieves, lists, downloads and deletes", async () => {
    const content = jsonl([chatLine("a", "hello"), chatLine("b", "world")]);
    const file = await s.client.files.create({
      file: await toFile(Buffer.from(content), "in.jsonl"),
      purpose: "batch",
    });
    expect(file).toMatchObject({
      object: "file",
      purpose: "batch",
      filename: "in.jsonl",
      bytes: Buffer.byteLength(content),
    });
    expect(file.id).toMatch(/^file-/);
    expect((await s.client.files.retrieve(file.id)).id).toBe(file.id);
    const text = await (await s.client.files.content(file.id)).text();
    expect(text).toBe(content);
    const listed = [];
    for await (const f of s.client.files.list({ purpose: "batch" })) listed.push(f.id);
    expect(listed).toContain(file.id);
    expect(await s.client.files.delete(file.id)).toEqual({ id: file.id, object: "file", deleted: true });
    await expect(s.client.files.retrieve(file.id)).rejects.toMatchObject({ status: 404 });
  });

  it("honours expires_after", async () => {
    const file = await s.client.files.create({
      file: await toFile(Buffer.from(chatLine("x", "y")), "e.jsonl"),
      purpose: "batch",
      expires_after: { anchor: "created_at", seconds: 3600 },
    });
    expect(file.expires_at).toBe(file.created_at + 3600);
  });

  it("rejects a bad purpose and a missing file with the error envelope", async () => {
    await expect(
      s.client.files.create({ file: await toFile(Buffer.from("x"), "a.jsonl"), purpose: "nonsense" as "batch" }),
    ).rejects.toMatchObject({ status: 400, error: { param: "purpose", type: "invalid_request_error" } });
    const res = await fetch(`${s.baseURL}/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(415);
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
  });
});

describe("auth", () => {
  it("answers 401 for a missing or wrong key", async () => {
    const bad = new OpenAI({ baseURL: s.baseURL, apiKey: "sk-wrong", maxRetries: 0 });
    await expect(bad.batches.list()).rejects.toMatchObject({ status: 401, error: { type: "authentication_error" } });
    const res = await fetch(`${s.baseURL}/batches`);
    expect(res.status).toBe(401);
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });
});

describe("Batches API through the official SDK", () => {
  it("creates, retrieves, paginates, cancels; 404s for unknown ids", async () => {
    const file = await s.client.files.create({
      file: await toFile(Buffer.from(jsonl([chatLine("1", "a")])), "b.jsonl"),
      purpose: "batch",
    });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const b = await s.client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
        metadata: { run: String(i) },
      });
      expect(b).toMatchObject({
        object: "batch",
        status: "validating",
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      expect(b.expires_at).toBe(b.created_at + 86400);
      expect(b.metadata).toEqual({ run: String(i) });
      ids.push(b.id);
    }
    const seen: string[] = [];
    for await (const b of s.client.batches.list({ limit: 3 })) seen.push(b.id);
    for (const id of ids) expect(seen).toContain(id);
    expect(new Set(seen).size).toBe(seen.length);
    const page = await s.client.batches.list({ limit: 3 });
    expect(page.data).toHaveLength(3);
    expect(page.has_more).toBe(true);

    const cancelled = await s.client.batches.cancel(ids[0] as string);
    expect(["cancelling", "cancelled"]).toContain(cancelled.status);
    const final = await waitForStatus(s.client, ids[0] as string, ["cancelled"]);
    expect(final.cancelled_at).toBeGreaterThan(0);
    await expect(s.client.batches.cancel(ids[0] as string)).resolves.toMatchObject({ status: "cancelled" });

    await expect(s.client.batches.retrieve("batch_nope")).rejects.toMatchObject({
      status: 404,
      error: { type: "not_found_error" },
    });
    await expect(s.client.batches.cancel("batch_nope")).rejects.toMatchObject({ status: 404 });
  });

  it("rejects invalid create requests", async () => {
    await expect(
      s.client.batches.create({
        input_file_id: "file-missing",
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toMatchObject({ status: 400, error: { param: "input_file_id" } });
    const file = await s.client.files.create({
      file: await toFile(Buffer.from(chatLine("1", "a")), "c.jsonl"),
      purpose: "batch",
    });
    await expect(
      s.client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "3 days" as "24h",
      }),
    ).rejects.toMatchObject({ status: 400, error: { param: "completion_window" } });
    await expect(
      s.client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/nope" as "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toMatchObject({ status: 400, error: { param: "endpoint" } });
  });

  it("cancelling a finished batch is a 409", async () => {
    const file = await s.client.files.create({
      file: await toFile(Buffer.from("not json\n"), "bad.jsonl"),
      purpose: "batch",
    });
    const b = await s.client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    await waitForStatus(s.client, b.id, ["failed"]);
    await expect(s.client.batches.cancel(b.id)).rejects.toMatchObject({
      status: 409,
      error: { type: "conflict_error" },
    });
  });
});
