/**
 * The attack run's reproductions of the authentication bypass, against a real `sluice serve`
 * process with two tenants and a master key: percent-encoded and absolute-form paths, a tenant
 * minting an admin key, writes behind 500s, /metrics without a key, an event stream outliving
 * its revoked key. Each must now be refused and change nothing. Also: a route that declares no
 * access stops the API from being built, and a failed transaction leaves nothing behind.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApi } from "../../src/api/server.js";
import { inTransaction, openStore } from "../../src/store/store.js";
import { createApiKey, ensureTenant, findTenantByName } from "../../src/store/tenants.js";
import { type Child, sluice } from "../helpers/cli.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { startSluice } from "../helpers/server.js";
import { STORES } from "../helpers/stores.js";

const ADMIN = `sk-env-admin-${randomBytes(12).toString("hex")}`;
let dir: string;
let fake: FakeBackend;
let child: Child;
let origin: URL;
let tenantA: { id: string; key: string };
let tenantB: { id: string; key: string };

/** One request sent byte for byte (curl --path-as-is / --request-target); status and body. */
function raw(method: string, target: string, key?: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? "" : JSON.stringify(body);
    const head = [`${method} ${target} HTTP/1.1`, `Host: ${origin.host}`, "Connection: close"];
    if (key !== undefined) head.push(`Authorization: Bearer ${key}`);
    if (body !== undefined)
      head.push("Content-Type: application/json", `Content-Length: ${Buffer.byteLength(payload)}`);
    const socket = connect(Number(origin.port), origin.hostname, () =>
      socket.write(`${head.join("\r\n")}\r\n\r\n${payload}`),
    );
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      received += d;
    });
    socket.on("error", reject);
    socket.on("close", () => {
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(received)?.[1] ?? 0);
      resolve({ status, body: received.slice(received.indexOf("\r\n\r\n") + 4) });
    });
  });
}

const api = async (method: string, path: string, key: string | undefined, body?: unknown) => {
  const r = await raw(method, path, key, body);
  return { status: r.status, json: (r.body.startsWith("{") ? JSON.parse(r.body) : {}) as Record<string, unknown> };
};

async function keyIds(): Promise<string[]> {
  const r = await api("GET", "/v1/admin/keys?include_revoked=true", ADMIN);
  return (r.json.data as { id: string }[]).map((k) => k.id).sort();
}

async function mintKey(tenant: string): Promise<{ id: string; key: string }> {
  const r = await api("POST", "/v1/admin/keys", ADMIN, { tenant });
  expect(r.status).toBe(200);
  return { id: r.json.id as string, key: r.json.key as string };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-attack-"));
  fake = await startFakeBackend(() => ({ kind: "hang" }));
  child = sluice(["serve", "--port", "0", "--data", dir, "--backend", fake.url], {
    SLUICE_API_KEY: ADMIN,
    SLUICE_MASTER_KEY: randomBytes(32).toString("base64"),
  });
  const [, url] = (await child.waitFor(/listening on (\S+)/)) as RegExpMatchArray;
  origin = new URL(url as string);
  tenantA = await mintKey("a");
  tenantB = await mintKey("b");
});

afterAll(async () => {
  child?.proc.kill("SIGKILL");
  await child?.exited;
  await fake?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("item 1: authentication decided on the matched route", () => {
  it("refuses percent-encoded and absolute-form admin paths without a key, and they read nothing", async () => {
    for (const target of [
      "/v%31/admin/keys",
      "/v%31/admin/tenants",
      "/v%31/admin/audit",
      "http://x/v1/admin/keys",
      "/v1/admin/%6beys",
      "/v1//admin/keys",
      "/v1/./admin/keys",
    ]) {
      const r = await raw("GET", target);
      expect({ target, status: r.status }).toEqual({ target, status: 400 });
      expect(r.body).not.toContain(tenantA.id);
      expect(r.body).not.toContain("key_");
    }
  });

  it("refuses encoded-path writes without a key, and nothing is written", async () => {
    const before = await keyIds();
    const limitsBefore = await api("GET", "/v1/admin/tenants", ADMIN);
    expect((await raw("DELETE", `/v%31/admin/keys/${tenantA.id}`)).status).toBe(400);
    expect((await raw("PUT", "/v%31/admin/tenants/b/limits", undefined, { max_batch_lines: 1 })).status).toBe(400);
    expect((await raw("POST", "/v%31/admin/keys", undefined, { tenant: "evil", admin: true })).status).toBe(400);
    // The same writes on the canonical path, still without a key: 401, and nothing written either.
    expect((await raw("DELETE", `/v1/admin/keys/${tenantA.id}`)).status).toBe(401);
    expect((await raw("POST", "/v1/admin/keys", undefined, { tenant: "evil", admin: true })).status).toBe(401);
    expect(await keyIds()).toEqual(before);
    expect((await api("GET", "/v1/admin/tenants", ADMIN)).json).toEqual(limitsBefore.json);
    expect((await api("GET", "/v1/files", tenantA.key)).status).toBe(200); // a's key still works
  });

  it("does not let a tenant's key mint an admin key, or a key for another tenant", async () => {
    const before = await keyIds();
    expect((await raw("POST", "/v1/%61dmin/keys", tenantB.key, { tenant: "default", admin: true })).status).toBe(400);
    const direct = await api("POST", "/v1/admin/keys", tenantB.key, { tenant: "a" });
    expect(direct.status).toBe(403);
    expect(JSON.stringify(direct.json)).not.toMatch(/sk-sluice-/);
    expect(await keyIds()).toEqual(before);
  });

  it("keeps tenant b away from tenant a's input file", async () => {
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", new Blob(["{}\n"]), "secret.jsonl");
    const up = await fetch(new URL("/v1/files", origin), {
      method: "POST",
      headers: { authorization: `Bearer ${tenantA.key}` },
      body: form,
    });
    const file = (await up.json()) as { id: string };
    expect((await raw("GET", `/v1/files/${file.id}/content`, tenantB.key)).status).toBe(404);
    expect((await raw("GET", `/v1/%66iles/${file.id}/content`, tenantB.key)).status).toBe(400);
    expect((await raw("GET", `/v1/files/${file.id}/content`, tenantA.key)).status).toBe(200);
  });

  it("needs a key before an unknown path answers 404 (deny by default)", async () => {
    expect((await raw("GET", "/v1/no-such-route")).status).toBe(401);
    expect((await raw("GET", "/v1/no-such-route", tenantA.key)).status).toBe(404);
    expect((await raw("GET", "/health")).status).toBe(200);
  });
});

describe("item 9: /metrics and revoked keys", () => {
  it("serves /metrics to admin keys only by default", async () => {
    expect((await raw("GET", "/metrics")).status).toBe(401);
    expect((await raw("GET", "/metrics", tenantA.key)).status).toBe(403);
    const ok = await raw("GET", "/metrics", ADMIN);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain("sluice_backlog_requests");
  });

  it("ends an event stream soon after the key that opened it is revoked", async () => {
    const owner = await mintKey("c");
    const form = new FormData();
    form.append("purpose", "batch");
    const line = { custom_id: "x", method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [] } };
    form.append("file", new Blob([`${JSON.stringify(line)}\n`]), "in.jsonl");
    const headers = { authorization: `Bearer ${owner.key}` };
    const file = (await (
      await fetch(new URL("/v1/files", origin), { method: "POST", headers, body: form })
    ).json()) as {
      id: string;
    };
    const batch = (await (
      await fetch(new URL("/v1/batches", origin), {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" }),
      })
    ).json()) as { id: string };
    // The backend hangs: the batch stays in progress and the stream would run for 24 h.
    const stream = await fetch(new URL(`/v1/batches/${batch.id}/events`, origin), { headers });
    expect(stream.status).toBe(200);
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain("event: batch");
    expect((await api("DELETE", `/v1/admin/keys/${owner.id}`, ADMIN)).status).toBe(200);
    // The stream must end by itself (the server closes it); the test's own timeout is the bound.
    for (;;) {
      const next = await reader.read();
      if (next.done) break;
    }
    expect((await raw("GET", `/v1/batches/${batch.id}`, owner.key)).status).toBe(401);
  });
});

describe("deny by default, in the code", () => {
  it("refuses to build an API with a route that declares no access", async () => {
    const s = await startSluice({ worker: false });
    try {
      await expect(
        buildApi(s.runtime.ctx, {
          envKey: undefined,
          extraRoutes: [(app) => app.get("/v1/undeclared", async () => ({ leaked: true }))],
        }),
      ).rejects.toThrow(/GET \/v1\/undeclared declares no access/);
    } finally {
      await s.close();
    }
  });

  for (const kind of STORES) {
    it(`a write whose handler fails leaves nothing behind (${kind.name})`, async () => {
      const db = await kind.createDatabase();
      const store = await openStore(db.location);
      try {
        await expect(
          inTransaction(store, async (tx) => {
            const t = await ensureTenant(tx, "half-written");
            await createApiKey(tx, { tenantId: t.id, admin: true });
            throw new Error("handler failed after its writes");
          }),
        ).rejects.toThrow(/handler failed/);
        expect(await findTenantByName(store, "half-written")).toBeUndefined();
      } finally {
        await store.close();
        await db.drop();
      }
    });
  }
});
