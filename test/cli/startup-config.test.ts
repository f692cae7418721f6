/** The start-up configuration line names locations and engines, never a password, key or header value. */
import { describe, expect, it } from "vitest";
import { startupConfig } from "../../src/cli/startup-config.js";
import { DEFAULT_LIMITS } from "../../src/config.js";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { createLogger } from "../../src/logger.js";

const MASTER_KEY = Buffer.alloc(32, 7).toString("base64");

describe("start-up configuration", () => {
  it("describes store, blobs, engines, changed limits and encryption without secrets", () => {
    const fields = startupConfig({
      command: "worker",
      common: {
        dataDir: "/var/lib/sluice",
        store: { kind: "postgres", url: "postgres://sluice:hunter2-pass@db.internal:6432/batches?sslmode=require" },
        blobs: "s3://bucket/sluice",
        s3: {
          region: "eu-west-1",
          endpoint: "http://minio:9000",
          credentials: { accessKeyId: "AKIA123", secretAccessKey: "s3-secret-value" },
        },
        logLevel: "info",
        limits: { ...DEFAULT_LIMITS, maxLines: 5000 },
        masterKeys: parseMasterKeys(`k1:${MASTER_KEY}`, "SLUICE_MASTER_KEY"),
      },
      execution: { timeoutMs: 60_000, hfToken: "hf_token_value" },
      routes: [
        {
          patterns: ["llama-3*"],
          backends: [
            {
              engine: "openai",
              url: "https://user:url-pass@vllm:8000/v1?key=query-secret",
              api_key_env: "VLLM_KEY",
              headers: { "X-Team": "search", Authorization: "Bearer header-secret-value" },
              concurrency: 64,
            },
          ],
        },
        { patterns: ["demo"], backends: [{ engine: "llama-cpp", model: "demo", threads: 2 }] },
      ],
    });
    expect(fields).toMatchObject({
      command: "worker",
      store: { kind: "postgres", host: "db.internal", port: 6432, database: "batches" },
      blobs: "s3://bucket/sluice",
      s3Endpoint: "http://minio:9000/",
      encryptionAtRest: true,
      limitsChanged: { maxLines: 5000 },
      execution: { timeoutMs: 60_000 },
      routes: [
        {
          match: ["llama-3*"],
          backends: [
            {
              engine: "openai",
              url: "https://vllm:8000/v1",
              authFromEnv: "VLLM_KEY",
              headers: ["X-Team", "Authorization"],
            },
          ],
        },
        { match: ["demo"], backends: [{ engine: "llama-cpp", model: "demo", threads: 2 }] },
      ],
    });
    expect(Object.keys(fields.limitsChanged as object)).toEqual(["maxLines"]);
    const lines: string[] = [];
    createLogger("info", (l) => lines.push(l)).info("sluice starting", fields);
    for (const secret of [
      "hunter2-pass",
      "url-pass",
      "query-secret",
      "header-secret-value",
      "s3-secret-value",
      "AKIA123",
      "hf_token_value",
      "k1",
    ]) {
      expect(lines[0]).not.toContain(secret);
    }
  });

  it("names a SQLite store by its path and says when data is stored in plaintext", () => {
    const fields = startupConfig({
      command: "serve",
      common: {
        dataDir: "/d",
        store: { kind: "sqlite", path: "/d/sluice.db" },
        logLevel: "debug",
        limits: DEFAULT_LIMITS,
      },
      server: { host: "127.0.0.1", port: 8080, tls: false, worker: true, metricsAuth: "admin" },
    });
    expect(fields).toEqual({
      command: "serve",
      logLevel: "debug",
      dataDir: "/d",
      store: { kind: "sqlite", path: "/d/sluice.db" },
      blobs: "/d/blobs",
      encryptionAtRest: false,
      limitsChanged: {},
      server: { host: "127.0.0.1", port: 8080, tls: false, worker: true, metricsAuth: "admin" },
    });
  });
});
