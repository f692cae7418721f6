/**
 * The admin API creates and revokes keys (shown once, stored only as a hash), and the audit log
 * records key creation and revocation, batch create/cancel/delete and downloads with the tenant
 * and the acting key's id: never a key.
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

describe("admin keys and the audit log", () => {
  it("creates a key once, lists only its prefix, and revokes it at once", async () => {
    const created = await call(s, admin.key, "POST", "/admin/keys", { tenant: "acme" });
    expect(created.status).toBe(200);
    const key = created.json.key as string;
    expect(key).toMatch(/^sk-sluice-[A-Za-z0-9]{40}$/);
    expect(created.json).toMatchObject({ object: "api_key", tenant: "acme", admin: false });
    expect((await call(s, key, "GET", "/files")).status).toBe(200);

    const listed = await call(s, admin.key, "GET", "/admin/keys?tenant=acme");
    expect(listed.text).not.toContain(key);
    expect((listed.json.data as { id: string }[]).map((k) => k.id)).toEqual([created.json.id]);
    const stored = await s.runtime.ctx.store.db.selectFrom("api_keys").selectAll().execute();
    expect(JSON.stringify(stored)).not.toContain(key);

    const revoked = await call(s, admin.key, "DELETE", `/admin/keys/${created.json.id}`);
    expect(revoked.json).toMatchObject({ id: created.json.id, revoked: true });
    expect((await call(s, key, "GET", "/files")).status).toBe(401);
    expect((await call(s, admin.key, "DELETE", `/admin/keys/${created.json.id}`)).status).toBe(404);
    const all = await call(s, admin.key, "GET", "/admin/keys?tenant=acme&include_revoked=true");
    expect((all.json.data as { revoked_at: number | null }[])[0]?.revoked_at).toBeGreaterThan(0);
  });

  it("validates admin request bodies", async () => {
    for (const body of [{}, { tenant: "Bad Name" }, { tenant: "x", admin: "yes" }, { tenant: "x", extra: 1 }]) {
      const res = await call(s, admin.key, "POST", "/admin/keys", body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
  });

  it("records who did what, without ever recording a key", async () => {
    const user = await tenantKey(s, "audited");
    const file = await call(s, user.key, "POST", "/files", jsonlFile([chatLine("a", "b")]));
    const batch = await call(s, user.key, "POST", "/batches", {
      input_file_id: file.json.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    await call(s, user.key, "POST", `/batches/${batch.json.id}/cancel`);
    await call(s, user.key, "GET", `/files/${file.json.id}/content`);
    await s.runtime.ctx.store.db
      .updateTable("batches")
      .set({ status: "cancelled" })
      .where("id", "=", batch.json.id as string)
      .execute();
    expect((await call(s, user.key, "DELETE", `/batches/${batch.json.id}`)).status).toBe(200);

    const audit = await call(s, admin.key, "GET", "/admin/audit?tenant=audited");
    const entries = audit.json.data as { action: string; key_id: string | null; tenant_id: string; target: string }[];
    expect(entries.map((e) => e.action).sort()).toEqual(
      ["batch.cancel", "batch.create", "batch.delete", "file.download"].sort(),
    );
    for (const e of entries) expect(e).toMatchObject({ tenant_id: user.tenantId, key_id: user.keyId });
    const rows = await s.runtime.ctx.store.db.selectFrom("audit_log").selectAll().execute();
    const text = JSON.stringify(rows);
    expect(text).not.toContain(user.key);
    expect(text).not.toContain(admin.key);
    expect(text).not.toContain("sk-sluice-");
    expect(rows.some((r) => r.action === "key.create")).toBe(true);
    expect(rows.some((r) => r.action === "key.revoke" && r.key_id === admin.keyId)).toBe(true);
  });
});
