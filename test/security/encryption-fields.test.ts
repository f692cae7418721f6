/**
 * With a master key, every user-supplied field is sealed, not only prompts and answers: a marker
 * placed in a file name, the custom_ids, a metadata value, the prompts (and so the echoed
 * answers) appears nowhere in the data folder (SQLite file, WAL, blobs) nor in any text column of
 * the PostgreSQL database, while the API, the output file and the download's file name show the
 * plaintext. Duplicate custom_ids are still found (keyed hash) and reported with their lines.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApi } from "../../src/api/server.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { silentLogger } from "../../src/logger.js";
import { openRuntime } from "../../src/runtime.js";
import type { StoreLocation } from "../../src/store/store.js";
import { filesUnder, hitsUnder } from "../helpers/data-folder.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine, waitForStatus } from "../helpers/server.js";
import { STORES, type TestDatabase } from "../helpers/stores.js";
import { call } from "../helpers/tenants.js";

let fake: FakeBackend;
beforeAll(async () => {
  fake = await startFakeBackend();
});
afterAll(async () => fake?.close());

/** startSluice (test/helpers/server.ts) on a given store, with a master key. */
async function startEncrypted(store: StoreLocation | undefined) {
  const dataDir = await mkdtemp(join(tmpdir(), "sluice-fields-"));
  const apiKey = "sk-test-key-0123456789";
  const runtime = await openRuntime(
    {
      dataDir,
      store: store ?? { kind: "sqlite", path: join(dataDir, "sluice.db") },
      logLevel: "silent",
      limits: DEFAULT_LIMITS,
      masterKeys: parseMasterKeys(randomBytes(32).toString("base64"), "test"),
    },
    { execution: { backend: fake.url }, worker: { tickMs: 50 }, logger: silentLogger },
  );
  const app = await buildApi(runtime.ctx, { envKey: apiKey });
  const address = await app.listen({ host: "127.0.0.1", port: 0 });
  runtime.worker?.start();
  const baseURL = `${address}/v1`;
  return {
    baseURL,
    apiKey,
    dataDir,
    runtime,
    routes: app.declaredRoutes,
    client: new OpenAI({ baseURL, apiKey, maxRetries: 0 }),
    async close() {
      const closing = app.close();
      app.server.closeAllConnections();
      await closing;
      await runtime.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** `table.column` of every text-like column of the PostgreSQL database holding any marker. */
async function pgHits(url: string, markers: readonly string[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const columns = await client.query<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns
       WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'bytea')`,
    );
    expect(columns.rows.map((c) => `${c.table_name}.${c.column_name}`)).toEqual(
      expect.arrayContaining(["files.filename", "requests.custom_id", "requests.body", "batches.metadata"]),
    );
    const found: string[] = [];
    for (const { table_name: t, column_name: c } of columns.rows) {
      for (const m of markers) {
        const res = await client.query(`SELECT 1 FROM "${t}" WHERE position($1 in "${c}"::text) > 0 LIMIT 1`, [m]);
        if (res.rowCount !== 0) found.push(`${t}.${c}: ${m}`);
      }
    }
    return found;
  } finally {
    await client.end();
  }
}

describe.each(STORES)("encrypted user fields on $name", (kind) => {
  const tag = randomBytes(6).toString("hex");
  const m = {
    name: `NAME-MARKER-${tag}`,
    id: `CID-MARKER-${tag}`,
    meta: `META-MARKER-${tag}`,
    prompt: `PROMPT-MARKER-${tag}`,
  };
  const fileName = `${m.name}.jsonl`;
  let database: TestDatabase | undefined;
  let s: Awaited<ReturnType<typeof startEncrypted>>;
  let file: OpenAI.Files.FileObject;
  let done: OpenAI.Batches.Batch;

  beforeAll(async () => {
    database = kind.name === "postgres" ? await kind.createDatabase() : undefined;
    s = await startEncrypted(database?.location);
    const lines = Array.from({ length: 10 }, (_, i) => chatLine(`${m.id}-${i}`, `${m.prompt} number ${i}`));
    file = await s.client.files.create({
      file: await toFile(Buffer.from(`${lines.join("\n")}\n`), fileName),
      purpose: "batch",
    });
    const created = await s.client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { note: m.meta },
    });
    done = await waitForStatus(s.client, created.id, ["completed"]);
  });
  afterAll(async () => {
    await s?.close();
    await database?.drop();
  });

  it("shows the plaintext through the API and in the output", async () => {
    expect(done.request_counts).toEqual({ total: 10, completed: 10, failed: 0 });
    expect(done.metadata).toEqual({ note: m.meta });
    expect((await s.client.batches.retrieve(done.id)).metadata).toEqual({ note: m.meta });
    const batches = await s.client.batches.list();
    expect(batches.data.find((b) => b.id === done.id)?.metadata).toEqual({ note: m.meta });
    expect(file.filename).toBe(fileName);
    expect((await s.client.files.retrieve(file.id)).filename).toBe(fileName);
    const files = await s.client.files.list();
    expect(files.data.find((f) => f.id === file.id)?.filename).toBe(fileName);
    // Output files are named by the batch id (not user data) and stay unsealed.
    expect(files.data.find((f) => f.id === done.output_file_id)?.filename).toBe(`${done.id}_output.jsonl`);

    const download = await fetch(`${s.baseURL}/files/${file.id}/content`, {
      headers: { authorization: `Bearer ${s.apiKey}` },
    });
    expect(download.headers.get("content-disposition")).toContain(`filename="${fileName}"`);
    await download.arrayBuffer();

    const output = (await (await s.client.files.content(done.output_file_id ?? "")).text()).trim().split("\n");
    const parsed = output.map((l) => JSON.parse(l) as { custom_id: string; response: { body: unknown } });
    expect(parsed.map((l) => l.custom_id)).toEqual(Array.from({ length: 10 }, (_, i) => `${m.id}-${i}`));
    expect(JSON.stringify(parsed[3]?.response.body)).toContain(`echo:${m.prompt} number 3`);
    const partial = await call(s, s.apiKey, "GET", `/batches/${done.id}/output`);
    expect(partial.text).toContain(`"custom_id":"${m.id}-7"`);
  });

  it("stores none of the markers in plaintext", async () => {
    const markers = [m.name, m.id, m.meta, m.prompt, "echo:"];
    const files = await filesUnder(s.dataDir);
    expect(files.some((f) => f.includes("/blobs/"))).toBe(true);
    if (database === undefined) {
      expect(files.some((f) => f.endsWith("sluice.db-wal"))).toBe(true);
    } else {
      const url = database.location.kind === "postgres" ? database.location.url : "";
      expect(await pgHits(url, markers)).toEqual([]);
      // Control: the search finds what is stored in plaintext.
      expect(await pgHits(url, [done.id])).not.toEqual([]);
    }
    expect(await hitsUnder(s.dataDir, markers)).toEqual([]);
  });

  it("still reports duplicate custom_ids with their lines", async () => {
    const ids = ["a", "b", "a", "c", "b", "a"].map((x) => `${m.id}-${x}`);
    const dup = await s.client.files.create({
      file: await toFile(Buffer.from(`${ids.map((id) => chatLine(id, "hi")).join("\n")}\n`), "dup.jsonl"),
      purpose: "batch",
    });
    const created = await s.client.batches.create({
      input_file_id: dup.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const failed = await waitForStatus(s.client, created.id, ["failed"]);
    const errors = (failed.errors?.data ?? []).map((e) => [e.code, e.line, e.message]);
    expect(errors).toEqual([
      ["duplicate_custom_id", 3, "Duplicate custom_id (first seen on line 1)."],
      ["duplicate_custom_id", 5, "Duplicate custom_id (first seen on line 2)."],
      ["duplicate_custom_id", 6, "Duplicate custom_id (first seen on line 1)."],
    ]);
  });
});
