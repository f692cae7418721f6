/** `sluice keys create|list|revoke` on a data folder, then the key against a server on that folder. */
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApi } from "../../src/api/server.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { silentLogger } from "../../src/logger.js";
import { openRuntime } from "../../src/runtime.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..", "..");
let dir: string;

/** The CLI from source (tsx), so the test needs no build. */
async function sluice(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), ...args, "--data", dir], {
    cwd: ROOT,
    env: { ...process.env, SLUICE_LOG_LEVEL: "warn", SLUICE_API_KEY: "" },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-keys-"));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe("sluice keys", () => {
  it("creates, lists and revokes keys that the server honours", async () => {
    const created = await sluice("keys", "create", "--tenant", "acme");
    const key = created.stdout.trim();
    expect(key).toMatch(/^sk-sluice-[A-Za-z0-9]{40}$/);
    expect(created.stderr).toMatch(/shown once/);
    const adminKey = JSON.parse((await sluice("keys", "create", "--tenant", "ops", "--admin", "--json")).stdout) as {
      id: string;
      key: string;
      admin: boolean;
    };
    expect(adminKey.admin).toBe(true);

    const listed = (await sluice("keys", "list")).stdout;
    expect(listed).toMatch(/acme/);
    expect(listed).toMatch(/ops .* admin/);
    expect(listed).not.toContain(key);
    const keyId = /^(key_\w+)\s+acme/m.exec(listed)?.[1] ?? "";

    const runtime = await openRuntime(
      {
        dataDir: dir,
        store: { kind: "sqlite", path: join(dir, "sluice.db") },
        logLevel: "silent",
        limits: DEFAULT_LIMITS,
      },
      { worker: false, logger: silentLogger },
    );
    const app = await buildApi(runtime.ctx, { envKey: undefined });
    try {
      const address = await app.listen({ host: "127.0.0.1", port: 0 });
      const get = (k: string, path = "/v1/files") =>
        fetch(`${address}${path}`, { headers: { authorization: `Bearer ${k}` } });
      expect((await get(key)).status).toBe(200);
      expect((await get(key, "/v1/admin/keys")).status).toBe(403);
      expect((await get(adminKey.key, "/v1/admin/keys")).status).toBe(200);

      expect((await sluice("keys", "revoke", keyId)).stdout).toMatch(/Revoked/);
      expect((await get(key)).status).toBe(401);
      await expect(sluice("keys", "revoke", keyId)).rejects.toMatchObject({ code: 2 });
    } finally {
      await app.close();
      await runtime.close();
    }
  });
});
