/** `serve --tls-cert/--tls-key`: the API over HTTPS, with a self-signed certificate made here. */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, fetch as undiciFetch } from "undici";
import { describe, expect, it } from "vitest";
import { buildApi } from "../../src/api/server.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { silentLogger } from "../../src/logger.js";
import { openRuntime } from "../../src/runtime.js";

function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("HTTPS", () => {
  it.skipIf(!hasOpenssl())("serves the API over TLS", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sluice-tls-"));
    const [certPath, keyPath] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "1"].concat([
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ]),
      { stdio: "ignore" },
    );
    const cert = await readFile(certPath);
    const runtime = await openRuntime(
      { dataDir: dir, store: { kind: "sqlite", path: join(dir, "s.db") }, logLevel: "silent", limits: DEFAULT_LIMITS },
      { worker: false, logger: silentLogger },
    );
    const app = await buildApi(runtime.ctx, {
      envKey: "sk-tls-test-key",
      https: { cert, key: await readFile(keyPath) },
    });
    const dispatcher = new Agent({ connect: { ca: cert } });
    try {
      const address = await app.listen({ host: "127.0.0.1", port: 0 });
      expect(address).toMatch(/^https:\/\//);
      const res = await undiciFetch(`${address}/v1/files`, {
        headers: { authorization: "Bearer sk-tls-test-key" },
        dispatcher,
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { object: string }).object).toBe("list");
      // Plain HTTP to the TLS port is not served.
      await expect(fetch(`${address.replace("https:", "http:")}/health`)).rejects.toThrow();
    } finally {
      await dispatcher.close();
      await app.close();
      await runtime.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
