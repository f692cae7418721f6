/**
 * Tenant isolation, endpoint by endpoint: with two tenants' keys and each other's ids, every
 * route answers exactly what it answers for an id that does not exist (404, or 400 for an input
 * file), lists show only one's own objects, admin routes refuse non-admin keys, and the other
 * tenant's objects are untouched afterwards.
 */
import { randomBytes } from "node:crypto";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine, startSluice, type TestServer, waitForStatus } from "../helpers/server.js";
import { call, type TenantKey, tenantKey } from "../helpers/tenants.js";

let fake: FakeBackend;
let s: TestServer;
let alice: TenantKey;
let bob: TenantKey;
let admin: TenantKey;

interface Owned {
  fileId: string;
  batchId: string;
  outputFileId: string;
  runningBatchId: string;
}
const owned: Record<string, Owned> = {};

async function seed(t: TenantKey, name: string): Promise<Owned> {
  const input = `${[chatLine(`${name}-1`, `hello from ${name}`), chatLine(`${name}-2`, `second from ${name}`)].join("\n")}\n`;
  const file = await t.client.files.create({
    file: await toFile(Buffer.from(input), `${name}.jsonl`),
    purpose: "batch",
  });
  const batch = await t.client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  const done = await waitForStatus(t.client, batch.id, ["completed"]);
  // Reuse off: the same lines would otherwise be answered from the first batch at once.
  const rerun = {
    input_file_id: file.id,
    endpoint: "/v1/chat/completions" as const,
    completion_window: "24h" as const,
    reuse: "off",
  };
  const running = await t.client.batches.create(rerun);
  return { fileId: file.id, batchId: batch.id, outputFileId: done.output_file_id ?? "", runningBatchId: running.id };
}

beforeAll(async () => {
  // Second batches hang at the backend so they stay in progress (cancellable) during the walk.
  fake = await startFakeBackend((c) => (String(c.attempt) !== "1" ? { kind: "hang" } : { kind: "ok" }));
  s = await startSluice({
    execution: { backend: fake.url },
    masterKeys: parseMasterKeys(randomBytes(32).toString("base64"), "test"),
  });
  alice = await tenantKey(s, "alice");
  bob = await tenantKey(s, "bob");
  admin = await tenantKey(s, "ops", true);
  owned.alice = await seed(alice, "alice");
  owned.bob = await seed(bob, "bob");
});
afterAll(async () => {
  // Cancelling aborts the calls hanging at the backend, so shutdown need not wait for them.
  for (const [t, o] of [
    [alice, owned.alice],
    [bob, owned.bob],
  ] as const) {
    if (o !== undefined) await t.client.batches.cancel(o.runningBatchId).catch(() => {});
  }
  for (const [t, o] of [
    [alice, owned.alice],
    [bob, owned.bob],
  ] as const) {
    if (o !== undefined) await waitForStatus(t.client, o.runningBatchId, ["cancelled"]).catch(() => {});
  }
  await s?.close();
  await fake?.close();
});

/** What a route answers for an id, with `{id}` replaced; compared against an unknown id. */
const ROUTES: { method: string; path: string; body?: unknown; idKind: "file" | "batch" | "output" }[] = [
  { method: "GET", path: "/files/{id}", idKind: "file" },
  { method: "GET", path: "/files/{id}/content", idKind: "file" },
  { method: "GET", path: "/files/{id}", idKind: "output" },
  { method: "GET", path: "/files/{id}/content", idKind: "output" },
  { method: "DELETE", path: "/files/{id}", idKind: "file" },
  { method: "DELETE", path: "/files/{id}", idKind: "output" },
  { method: "GET", path: "/batches/{id}", idKind: "batch" },
  { method: "POST", path: "/batches/{id}/cancel", idKind: "batch" },
  { method: "DELETE", path: "/batches/{id}", idKind: "batch" },
  { method: "GET", path: "/batches/{id}/output", idKind: "batch" },
  { method: "GET", path: "/batches/{id}/output?type=all", idKind: "batch" },
  { method: "GET", path: "/batches/{id}/events", idKind: "batch" },
];

const idOf = (o: Owned, kind: "file" | "batch" | "output") =>
  kind === "file" ? o.fileId : kind === "batch" ? o.runningBatchId : o.outputFileId;
const unknownId = (kind: "file" | "batch" | "output") =>
  kind === "batch" ? "batch_0000000000000000unknown" : "file-0000000000000000unknown";

describe("tenant isolation", () => {
  it.each([
    ["bob", "alice"],
    ["alice", "bob"],
  ] as const)("%s gets 404 on every route for %s's objects, exactly as for unknown ids", async (me, other) => {
    const key = me === "bob" ? bob.key : alice.key;
    for (const r of ROUTES) {
      const theirs = idOf(owned[other] as Owned, r.idKind);
      const nobody = unknownId(r.idKind);
      const a = await call(s, key, r.method, r.path.replace("{id}", theirs), r.body);
      const b = await call(s, key, r.method, r.path.replace("{id}", nobody), r.body);
      expect(a.status, `${r.method} ${r.path} (${r.idKind})`).toBe(404);
      expect(b.status).toBe(404);
      expect(a.json.error?.message.replace(theirs, "ID")).toBe(b.json.error?.message.replace(nobody, "ID"));
      expect({ ...a.json.error, message: "" }).toEqual({ ...b.json.error, message: "" });
    }
  });

  it("refuses another tenant's file as a batch input exactly like an unknown file", async () => {
    const body = (id: string) => ({ input_file_id: id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const a = await call(s, bob.key, "POST", "/batches", body(owned.alice?.fileId ?? ""));
    const b = await call(s, bob.key, "POST", "/batches", body("file-0000000000000000unknown"));
    expect(a.status).toBe(400);
    expect(b.status).toBe(400);
    expect(a.json.error?.code).toBe(b.json.error?.code);
  });

  it("lists only one's own files and batches, whatever the cursor", async () => {
    const files = await call(s, bob.key, "GET", "/files");
    const fileIds = (files.json.data as { id: string }[]).map((f) => f.id);
    expect(fileIds).toContain(owned.bob?.fileId);
    expect(fileIds).not.toContain(owned.alice?.fileId);
    expect(fileIds).not.toContain(owned.alice?.outputFileId);
    const batches = await call(s, bob.key, "GET", "/batches");
    const batchIds = (batches.json.data as { id: string }[]).map((b) => b.id);
    expect(batchIds.sort()).toEqual([owned.bob?.batchId, owned.bob?.runningBatchId].sort());
    // Another tenant's id as a cursor behaves like an unknown cursor: no position leaks.
    for (const [path, theirs] of [
      ["/files?after=", owned.alice?.fileId],
      ["/batches?after=", owned.alice?.batchId],
    ] as const) {
      const a = await call(s, bob.key, "GET", `${path}${theirs}`);
      const b = await call(s, bob.key, "GET", `${path}unknown_id`);
      expect(a.json.data).toEqual(b.json.data);
    }
  });

  it("refuses admin routes to non-admin keys, whatever the ids", async () => {
    const routes: [string, string, unknown?][] = [
      ["GET", "/admin/keys"],
      ["POST", "/admin/keys", { tenant: "alice" }],
      ["DELETE", `/admin/keys/${alice.keyId}`],
      ["DELETE", `/admin/keys/${bob.keyId}`],
      ["DELETE", "/admin/keys/key_unknown"],
      ["GET", "/admin/tenants"],
      ["PUT", "/admin/tenants/alice/limits", { max_batch_lines: 1 }],
      ["GET", "/admin/audit"],
      ["GET", "/admin/audit?tenant=alice"],
    ];
    for (const [method, path, body] of routes) {
      const res = await call(s, bob.key, method, path, body);
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.json.error?.type).toBe("permission_error");
    }
    // Both keys still work: nothing was revoked.
    expect((await call(s, alice.key, "GET", "/batches")).status).toBe(200);
    expect((await call(s, bob.key, "GET", "/batches")).status).toBe(200);
  });

  it("left the other tenant's objects untouched", async () => {
    const a = owned.alice as Owned;
    expect((await alice.client.files.retrieve(a.fileId)).id).toBe(a.fileId);
    expect(await (await alice.client.files.content(a.fileId)).text()).toContain("hello from alice");
    expect(await (await alice.client.files.content(a.outputFileId)).text()).toContain("echo:hello from alice");
    expect((await alice.client.batches.retrieve(a.runningBatchId)).status).toBe("in_progress");
    expect((await alice.client.batches.retrieve(a.batchId)).status).toBe("completed");
  });

  it("stores every row under its owner's tenant", async () => {
    const db = s.runtime.ctx.store.db;
    for (const [t, o] of [
      [alice, owned.alice],
      [bob, owned.bob],
    ] as const) {
      const rows = await db
        .selectFrom("requests")
        .select("tenant_id")
        .where("batch_id", "in", [o?.batchId ?? "", o?.runningBatchId ?? ""])
        .execute();
      expect(rows.length).toBe(4);
      expect(new Set(rows.map((r) => r.tenant_id))).toEqual(new Set([t.tenantId]));
      const files = await db
        .selectFrom("files")
        .select("tenant_id")
        .where("id", "in", [o?.fileId ?? "", o?.outputFileId ?? ""])
        .execute();
      expect(new Set(files.map((f) => f.tenant_id))).toEqual(new Set([t.tenantId]));
    }
  });

  it("lets an admin see both tenants' keys", async () => {
    const keys = await call(s, admin.key, "GET", "/admin/keys");
    const tenants = (keys.json.data as { tenant: string }[]).map((k) => k.tenant);
    expect(tenants).toEqual(expect.arrayContaining(["alice", "bob", "ops"]));
    expect(keys.text).not.toContain(alice.key);
  });
});
