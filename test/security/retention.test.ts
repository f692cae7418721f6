/** Expired files (uploads and outputs) are deleted with their blobs and data keys. */
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { sweepExpiredFiles } from "../../src/retention/expiry-sweeper.js";
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
});
