/** Expired files (uploads and outputs) are deleted with their blobs and data keys. */
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { sweepExpiredFiles, sweepExpiredResults } from "../../src/retention/expiry-sweeper.js";
import { insertBatch, newBatchRow } from "../../src/store/batches.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import { nowSeconds } from "../../src/store/tenants.js";
import { chatLine, startSluice, type TestServer } from "../helpers/server.js";

let s: TestServer;
beforeAll(async () => {
  s = await startSluice({ worker: false, masterKeys: parseMasterKeys(randomBytes(32).toString("base64"), "t") });
});
afterAll(async () => s?.close());

describe("expiry sweeper", () => {
  it("deletes files whose expires_at passed, their blobs and their data keys; keeps the others", async () => {
    const upload = async (name: string, expires?: number) =>
      s.client.files.create({
        file: await toFile(Buffer.from(`${chatLine(name, "x")}\n`), `${name}.jsonl`),
        purpose: "batch",
        ...(expires === undefined ? {} : { expires_after: { anchor: "created_at" as const, seconds: expires } }),
      });
    const short = await upload("short", 3600);
    const long = await upload("long", 7200);
    const forever = await upload("forever");
    const { ctx } = s.runtime;
    expect(await sweepExpiredFiles(ctx, nowSeconds())).toBe(0);

    expect(await sweepExpiredFiles(ctx, short.created_at + 3600)).toBe(1);
    await expect(s.client.files.retrieve(short.id)).rejects.toMatchObject({ status: 404 });
    expect((await s.client.files.retrieve(long.id)).id).toBe(long.id);
    const keys = (await ctx.store.db.selectFrom("data_keys").select("id").execute()).map((r) => r.id);
    expect(keys).not.toContain(short.id);
    expect(keys).toContain(long.id);
    const blobs = await readdir(join(s.dataDir, "blobs", "files", "default"));
    expect(blobs.sort()).toEqual([forever.id, long.id].sort());

    expect(await sweepExpiredFiles(ctx, long.created_at + 10_000_000)).toBe(1);
    expect((await s.client.files.retrieve(forever.id)).id).toBe(forever.id);
    const audit = await ctx.store.db.selectFrom("audit_log").selectAll().where("action", "=", "file.expire").execute();
    expect(audit.map((a) => a.target).sort()).toEqual([long.id, short.id].sort());
  });

  it("deletes the prompts and results of ended batches past output_expires_after", async () => {
    const { ctx } = s.runtime;
    const batch = (id: string, status: string, outputExpires: number | null) =>
      insertBatch(
        ctx.store,
        newBatchRow(
          {
            id,
            tenant_id: "default",
            endpoint: "/v1/chat/completions",
            input_file_id: "file-x",
            completion_window: "24h",
            created_at: 1000,
            expires_at: 90_000,
          },
          {
            status,
            in_progress_at: 1000,
            completed_at: status === "completed" ? 2000 : null,
            output_expires_seconds: outputExpires,
            total: 1,
          },
        ),
      );
    const row = (batchId: string) => ({
      tenant_id: "default",
      batch_id: batchId,
      line: 1,
      custom_id: "a",
      model: "m",
      body: "{}",
      status: "pending" as const,
      prefix_key: null,
    });
    for (const [id, status, exp] of [
      ["batch_ret_done", "completed", 3600],
      ["batch_ret_keep", "completed", null],
      ["batch_ret_running", "in_progress", 3600],
    ] as const) {
      await batch(id, status, exp);
      await insertRequestChunk(ctx.store, [row(id)]);
      await ctx.store.dataKeys.get(id);
    }
    expect(await sweepExpiredResults(ctx, 2000 + 3599)).toBe(0);
    expect(await sweepExpiredResults(ctx, 2000 + 3600)).toBe(1);
    const left = await ctx.store.db.selectFrom("requests").select("batch_id").execute();
    expect(left.map((r) => r.batch_id).sort()).toEqual(["batch_ret_keep", "batch_ret_running"]);
    const keys = (await ctx.store.db.selectFrom("data_keys").select("id").execute()).map((r) => r.id);
    expect(keys).not.toContain("batch_ret_done");
    expect(keys).toContain("batch_ret_keep");
    expect(await sweepExpiredResults(ctx, 10_000_000)).toBe(0);
  });
});
