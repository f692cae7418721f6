/**
 * Never pay twice, through the API (the official SDK against a real listening server, a loopback
 * engine that counts calls), on SQLite and PostgreSQL: a retry calls the engine only for the lines
 * that failed and its output holds every line once, in input order; a resubmitted file calls
 * nothing and gets the same bodies, `reuse: "off"` calls again, `reuse: "body"` matches identical
 * bodies under other custom_ids; another tenant, a deleted batch and a shredded one are never
 * reused; with a master key the reuse columns hold keyed hashes only.
 */
import { randomBytes } from "node:crypto";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { expectedContent, type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";
import { STORES, type TestDatabase } from "../helpers/stores.js";
import { call, tenantKey } from "../helpers/tenants.js";

type OutLine = {
  custom_id: string;
  response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
  reused_from?: string;
};

let fake: FakeBackend;
beforeAll(async () => {
  // Prompts saying "half-fail" fail their first call with a 400 (final: no retry).
  // Prompts saying "hang" are never answered (their batch stays in progress until cancelled).
  fake = await startFakeBackend((c) => {
    if (c.customKey.includes("hang")) return { kind: "hang" };
    return c.customKey.includes("half-fail") && c.attempt === 1 ? { kind: "status", status: 400 } : { kind: "ok" };
  });
});
afterAll(() => fake.close());

/** Engine calls so far for prompts containing `tag`. */
const callsFor = (tag: string) => [...fake.counts].filter(([k]) => k.includes(tag)).reduce((n, [, c]) => n + c, 0);

describe.each(STORES)("reuse on $name", (kind) => {
  let s: TestServer;
  let db: TestDatabase | undefined;
  const masterKeys = parseMasterKeys(randomBytes(32).toString("base64"), "test");
  beforeAll(async () => {
    db = kind.name === "postgres" ? await kind.createDatabase() : undefined;
    s = await startSluice({
      execution: { backend: fake.url, maxAttempts: 1 },
      masterKeys,
      ...(db ? { store: db.location } : {}),
    });
  });
  afterAll(async () => {
    await s?.close();
    await db?.drop();
  });

  const tag = (t: string) => `${t}-${kind.name}`;

  async function submit(
    client: TestServer["client"],
    lines: string[],
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    const file = await client.files.create({
      file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "in.jsonl"),
      purpose: "batch",
    });
    const body = { input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", ...extra };
    const batch = (await client.post("/batches", { body })) as { id: string };
    return batch.id;
  }

  async function finish(client: TestServer["client"], id: string) {
    return waitForStatus(client, id, ["completed", "failed", "expired", "cancelled"]);
  }

  async function output(client: TestServer["client"], fileId: string | null | undefined): Promise<OutLine[]> {
    if (fileId === null || fileId === undefined) return [];
    const text = await (await client.files.content(fileId)).text();
    return text
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as OutLine);
  }

  it("a retry calls the engine only for the failed lines; its output holds every line once, in order", async () => {
    const t = tag("retry");
    const lines = Array.from({ length: 40 }, (_, i) =>
      chatLine(`r${i}`, i % 2 ? `${t} half-fail ${i}` : `${t} ok ${i}`),
    );
    const first = await finish(s.client, await submit(s.client, lines));
    expect(first.status).toBe("completed");
    expect(first.request_counts).toMatchObject({ total: 40, completed: 20, failed: 20 });
    expect(callsFor(t)).toBe(40);

    const res = await call(s, s.apiKey, "POST", `/batches/${first.id}/retry`);
    expect(res.status).toBe(200);
    const retryId = String(res.json.id);
    expect(retryId).not.toBe(first.id);
    const retry = await finish(s.client, retryId);
    expect(callsFor(t)).toBe(60); // the 20 failed lines, once each
    expect(retry.request_counts).toMatchObject({ total: 40, completed: 40, failed: 0 });
    const view = retry as unknown as { reuse: { mode: string; reused: number } };
    expect(view.reuse).toEqual({ mode: "custom_id+body", reused: 20 });
    // Usage: the 20 lines called for this batch only.
    const called = Array.from({ length: 20 }, (_, k) => 2 * k + 1).reduce(
      (n, i) => n + expectedContent({ messages: [{ content: `${t} half-fail ${i}` }] }).length,
      0,
    );
    expect(retry.usage?.input_tokens).toBe(called);
    const out = await output(s.client, retry.output_file_id);
    expect(out.map((o) => o.custom_id)).toEqual(lines.map((_, i) => `r${i}`));
    expect(out.map((o) => o.reused_from ?? null)).toEqual(lines.map((_, i) => (i % 2 ? null : first.id)));
    const firstOut = await output(s.client, first.output_file_id);
    expect(out[0]?.response).toEqual(firstOut[0]?.response);
  });

  it("a batch that has not ended cannot be retried (409)", async () => {
    const none = await call(s, s.apiKey, "POST", "/batches/batch_0000000000000000/retry");
    expect(none.status).toBe(404);
    const id = await submit(s.client, [chatLine("x", `${tag("running")} hang`)]);
    await waitForStatus(s.client, id, ["in_progress"]);
    const res = await call(s, s.apiKey, "POST", `/batches/${id}/retry`);
    expect(res.status).toBe(409);
    expect(res.json.error?.code).toBe("batch_not_ended");
    expect(res.json.error?.message).toContain("only an ended batch can be retried");
    await s.client.batches.cancel(id);
    expect((await finish(s.client, id)).status).toBe("cancelled");
  });

  it("resubmitting an identical file calls nothing; reuse off calls again; reuse body matches other custom_ids", async () => {
    const t = tag("resubmit");
    const lines = Array.from({ length: 12 }, (_, i) => chatLine(`s${i}`, `${t} ok ${i}`));
    const first = await finish(s.client, await submit(s.client, lines));
    expect(callsFor(t)).toBe(12);
    const again = await finish(s.client, await submit(s.client, lines));
    expect(callsFor(t)).toBe(12);
    expect(again.request_counts).toMatchObject({ completed: 12, failed: 0 });
    expect(again.usage?.input_tokens ?? 0).toBe(0);
    const a = await output(s.client, first.output_file_id);
    const b = await output(s.client, again.output_file_id);
    expect(b.map((o) => o.response?.body)).toEqual(a.map((o) => o.response?.body));
    expect(b.every((o) => o.reused_from === first.id)).toBe(true);

    const off = await finish(s.client, await submit(s.client, lines, { reuse: "off" }));
    expect(callsFor(t)).toBe(24);
    expect((await output(s.client, off.output_file_id)).some((o) => o.reused_from !== undefined)).toBe(false);

    const renamed = lines.map((_, i) => chatLine(`other-${i}`, `${t} ok ${i}`));
    await finish(s.client, await submit(s.client, renamed));
    expect(callsFor(t)).toBe(36); // custom_id+body: other ids, no match
    const byBody = await finish(
      s.client,
      await submit(
        s.client,
        renamed.map((l) => l.replace("other-", "third-")),
        { reuse: "body" },
      ),
    );
    expect(callsFor(t)).toBe(36);
    expect((byBody as unknown as { reuse: { reused: number } }).reuse.reused).toBe(12);
  });

  it("never reuses another tenant's, a deleted batch's or a shredded batch's results", async () => {
    const t = tag("isolated");
    const lines = Array.from({ length: 6 }, (_, i) => chatLine(`i${i}`, `${t} ok ${i}`));
    const a = await tenantKey(s, `tenant-a-${kind.name}`);
    const b = await tenantKey(s, `tenant-b-${kind.name}`);
    const mine = await finish(a.client, await submit(a.client, lines));
    expect(callsFor(t)).toBe(6);
    const theirs = await finish(b.client, await submit(b.client, lines));
    expect(callsFor(t)).toBe(12);
    expect((theirs as unknown as { reuse: { reused: number } }).reuse.reused).toBe(0);

    // Tenant A deletes its batch: a resubmission calls the engine again.
    expect((await call(s, a.key, "DELETE", `/batches/${mine.id}`)).status).toBe(200);
    const afterDelete = await finish(a.client, await submit(a.client, lines));
    expect(callsFor(t)).toBe(18);

    // A source whose data key is gone (crypto-shredded) cannot be opened: its lines are called.
    await s.runtime.ctx.store.dataKeys.destroy(afterDelete.id);
    const afterShred = await finish(a.client, await submit(a.client, lines));
    expect(afterShred.status).toBe("completed");
    expect(afterShred.request_counts).toMatchObject({ completed: 6, failed: 0 });
    expect(callsFor(t)).toBe(24);
  });

  it("with a master key the reuse columns hold keyed hashes, never plaintext", async () => {
    const t = tag("sealed");
    const lines = Array.from({ length: 4 }, (_, i) => chatLine(`k${i}`, `${t} ok ${i}`));
    const first = await finish(s.client, await submit(s.client, lines));
    const again = await finish(s.client, await submit(s.client, lines));
    expect(callsFor(t)).toBe(4);
    const rows = await s.runtime.ctx.store.db
      .selectFrom("requests")
      .select(["batch_id", "reuse_key", "resubmit_key", "reused_from"])
      .where("batch_id", "in", [first.id, again.id])
      .execute();
    expect(rows).toHaveLength(8);
    for (const r of rows) {
      expect(r.reuse_key).toMatch(/^h1:[A-Za-z0-9_-]{43}$/);
      expect(r.resubmit_key).toMatch(/^h1:[A-Za-z0-9_-]{43}$/);
      expect(r.reused_from).toBe(r.batch_id === again.id ? first.id : null);
    }
    const out = await output(s.client, again.output_file_id);
    expect(
      out.map(
        (o) =>
          (o.response?.body as { choices: { message: { content: string } }[] } | undefined)?.choices[0]?.message
            .content,
      ),
    ).toEqual(lines.map((_, i) => expectedContent({ messages: [{ content: `${t} ok ${i}` }] })));
  });
});
