/**
 * With a master key, no prompt or completion byte is stored in plaintext: a batch carrying marker
 * strings runs end to end, then the whole data folder (blobs, the SQLite file, its WAL and shm)
 * is searched for the markers. The same run without a master key finds them (the search works).
 * Deleting the batch and the file destroys their data keys (crypto-shredding).
 */
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MasterKeyring, parseMasterKeys } from "../../src/crypto/master-keys.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine, startSluice, waitForStatus } from "../helpers/server.js";
import { call } from "../helpers/tenants.js";

let fake: FakeBackend;
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => fake?.close());

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** Every file holding any of the markers (raw bytes: UTF-8 as written by the JSON layers). */
async function hits(dir: string, markers: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const f of await filesUnder(dir)) {
    const bytes = await readFile(f);
    for (const m of markers) if (bytes.includes(m)) found.push(`${f.slice(dir.length)}: ${m}`);
  }
  return found;
}

async function runMarkedBatch(masterKeys: MasterKeyring | undefined) {
  const s = await startSluice({ execution: { backend: fake.url }, ...(masterKeys ? { masterKeys } : {}) });
  const tag = randomBytes(6).toString("hex");
  const markers = [`PROMPT-MARKER-${tag}`, `SYSTEM-MARKER-${tag}`];
  const lines = Array.from({ length: 20 }, (_, i) =>
    chatLine(`req-${i}`, `${markers[0]} number ${i}`, "test-model", { metadata_note: `${markers[1]}` }),
  );
  const file = await s.client.files.create({
    file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "marked.jsonl"),
    purpose: "batch",
  });
  const created = await s.client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });
  const done = await waitForStatus(s.client, created.id, ["completed"]);
  return { s, markers, file, done };
}

describe("encryption at rest", () => {
  let enc: Awaited<ReturnType<typeof runMarkedBatch>>;
  beforeAll(async () => {
    enc = await runMarkedBatch(parseMasterKeys(randomBytes(32).toString("base64"), "test"));
  });
  afterAll(async () => enc?.s.close());

  it("serves decrypted content, output and partial output to the owner", async () => {
    const { s, markers, file, done } = enc;
    expect(done.request_counts).toEqual({ total: 20, completed: 20, failed: 0 });
    expect(await (await s.client.files.content(file.id)).text()).toContain(markers[0]);
    const output = await (await s.client.files.content(done.output_file_id ?? "")).text();
    expect(output.split("\n").filter(Boolean)).toHaveLength(20);
    expect(output).toContain(`echo:${markers[0]} number 7`);
    const partial = await call(s, s.apiKey, "GET", `/batches/${done.id}/output`);
    expect(partial.text).toContain(`echo:${markers[0]} number 3`);
  });

  it("leaves no marker in the data folder, the SQLite file or its WAL", async () => {
    const { s, markers } = enc;
    const files = await filesUnder(s.dataDir);
    expect(files.some((f) => f.endsWith("sluice.db-wal"))).toBe(true);
    expect(files.some((f) => f.includes("/blobs/"))).toBe(true);
    expect(await hits(s.dataDir, [...markers, "echo:"])).toEqual([]);
  });

  it("crypto-shreds a deleted batch and a deleted file", async () => {
    const { s, file, done } = enc;
    const db = s.runtime.ctx.store.db;
    const keyIds = async () => (await db.selectFrom("data_keys").select("id").execute()).map((r) => r.id);
    expect(await keyIds()).toEqual(expect.arrayContaining([file.id, done.id]));
    const del = await call(s, s.apiKey, "DELETE", `/batches/${done.id}`);
    expect(del.json).toEqual({ id: done.id, object: "batch", deleted: true });
    expect((await call(s, s.apiKey, "GET", `/batches/${done.id}`)).status).toBe(404);
    expect((await call(s, s.apiKey, "GET", `/files/${done.output_file_id}`)).status).toBe(404);
    const rows = await db.selectFrom("requests").select("line").where("batch_id", "=", done.id).execute();
    expect(rows).toEqual([]);
    await s.client.files.delete(file.id);
    expect(await keyIds()).not.toContain(done.id);
    expect(await keyIds()).not.toContain(file.id);
    const blobs = (await filesUnder(s.dataDir)).filter((f) => f.includes("/blobs/"));
    expect(blobs).toEqual([]);
  });
});

describe("without a master key (control)", () => {
  it("stores data in plaintext: the same search finds the markers", async () => {
    const { s, markers } = await runMarkedBatch(undefined);
    try {
      expect((await hits(s.dataDir, markers)).length).toBeGreaterThan(0);
    } finally {
      await s.close();
    }
  });
});
