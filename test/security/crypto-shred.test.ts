/**
 * Regression: after `DELETE /v1/batches/{id}` and `DELETE /v1/files/{id}` with a master key, the
 * wrapped data keys (and the encrypted rows) were still in `sluice.db-wal` (SQLite's
 * `secure_delete` was off, the WAL not checkpointed), so the data could be decrypted from the
 * data folder plus the master key. Now every file of the data folder (db, -wal, -shm, blobs) is
 * searched for the wrapped keys, as stored (base64 text) and as raw bytes, after the deletes.
 */
import { randomBytes } from "node:crypto";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { encryptionAtRest } from "../../src/crypto/row-cipher.js";
import { openStore } from "../../src/store/store.js";
import { hitsUnder } from "../helpers/data-folder.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine, startSluice, waitForStatus } from "../helpers/server.js";
import { STORES } from "../helpers/stores.js";

let fake: FakeBackend;
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => fake?.close());

/** The needles of a wrapped key: its base64 text, its raw bytes, and a 16-byte slice of each. */
function needles(wrapped: string): Buffer[] {
  const raw = Buffer.from(wrapped, "base64");
  return [Buffer.from(wrapped), raw, Buffer.from(wrapped.slice(8, 24)), raw.subarray(12, 28)];
}

it("leaves no copy of a deleted batch's or file's wrapped key anywhere in the SQLite data folder", async () => {
  const s = await startSluice({
    execution: { backend: fake.url },
    masterKeys: parseMasterKeys(randomBytes(32).toString("base64"), "test"),
  });
  try {
    const lines = Array.from({ length: 50 }, (_, i) => chatLine(`r-${i}`, `prompt ${i}`));
    const file = await s.client.files.create({
      file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "in.jsonl"),
      purpose: "batch",
    });
    const created = await s.client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const done = await waitForStatus(s.client, created.id, ["completed"]);
    const db = s.runtime.ctx.store.db;
    const keys = await db.selectFrom("data_keys").select(["id", "wrapped"]).execute();
    const wrapped = keys.filter((k) => k.id === file.id || k.id === done.id).map((k) => k.wrapped);
    expect(wrapped).toHaveLength(2);
    const all = wrapped.flatMap(needles);
    // Control: before the deletes the search finds them (the db file or its WAL holds them).
    expect((await hitsUnder(s.dataDir, all)).length).toBeGreaterThan(0);

    await s.client.batches.cancel(done.id).catch(() => {}); // ended already: a no-op or 409
    const del = await fetch(`${s.baseURL}/batches/${done.id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${s.apiKey}` },
    });
    expect(del.status).toBe(200);
    await s.client.files.delete(file.id);

    expect(await db.selectFrom("data_keys").select("id").where("id", "in", [file.id, done.id]).execute()).toEqual([]);
    expect(await hitsUnder(s.dataDir, all)).toEqual([]);
  } finally {
    await s.close();
  }
});

describe.each(STORES)("afterShred on $name", (kind) => {
  it("runs after a data key is destroyed, and the key is gone", async () => {
    const database = await kind.createDatabase();
    const store = await openStore(database.location, {
      encryption: encryptionAtRest(parseMasterKeys(randomBytes(32).toString("base64"), "test")),
    });
    try {
      await store.dataKeys.get("file_shred_me");
      expect(await store.db.selectFrom("data_keys").select("id").execute()).toHaveLength(1);
      await store.dataKeys.destroy("file_shred_me");
      expect(await store.db.selectFrom("data_keys").select("id").execute()).toEqual([]);
      await store.caps.afterShred(); // idempotent, callable any time
    } finally {
      await store.close();
      await database.drop();
    }
  });
});
