/** Configuration resolved once: every bad setting stops the process with exit 2 and one line. */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simOptionsFromFlags } from "../../src/cli/sim-command.js";
import {
  ConfigError,
  DEFAULT_LIMITS,
  resolveClient,
  resolveConfig,
  resolveLimits,
  resolveRunConfig,
  resolveServer,
} from "../../src/config.js";
import { BIN, ROOT } from "../helpers/cli.js";

const KEY = Buffer.alloc(32, 7).toString("base64");

/** The ConfigError message `fn` throws (fails if it throws anything else or nothing). */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe("invalid_setting");
    return (err as Error).message;
  }
  throw new Error("no ConfigError thrown");
}

describe("resolveConfig: bad values name the setting, the value and what is accepted", () => {
  const cases: [string, () => unknown, RegExp][] = [
    [
      "not an integer",
      () => resolveConfig({ maxAttempts: "five" }, {}),
      /^invalid setting --max-attempts: 'five' is not an integer \(accepted: 1–100\)$/,
    ],
    [
      "out of range",
      () => resolveConfig({ maxAttempts: "0" }, {}),
      /^invalid setting --max-attempts: '0' is out of range \(accepted: 1–100\)$/,
    ],
    [
      "a fraction",
      () => resolveConfig({ threads: "2.5" }, {}),
      /^invalid setting --threads: '2.5' is not an integer \(accepted: 1–1024\)$/,
    ],
    [
      "lease too short",
      () => resolveConfig({ leaseMs: "10" }, {}),
      /^invalid setting --lease-ms: '10' is out of range \(accepted: 1000–86400000 ms\)$/,
    ],
    ["timeout", () => resolveConfig({ timeoutMs: "-1" }, {}), /^invalid setting --timeout-ms: '-1' is out of range/],
    [
      "log level flag",
      () => resolveConfig({ logLevel: "loud" }, {}),
      /^invalid setting --log-level: 'loud' is not an accepted value \(accepted: debug \| info \| warn \| error \| silent\)$/,
    ],
    [
      "log level env",
      () => resolveConfig({}, { SLUICE_LOG_LEVEL: "verbose" }),
      /^invalid setting SLUICE_LOG_LEVEL: 'verbose' /,
    ],
    [
      "store",
      () => resolveConfig({}, { SLUICE_DATABASE_URL: "mysql://db/x" }),
      /^invalid setting SLUICE_DATABASE_URL: 'mysql:\/\/db\/x' is not a store URL \(accepted: postgres:\/\/… or postgresql:\/\/… or sqlite:PATH\)$/,
    ],
    ["store flag wins", () => resolveConfig({ store: "db.sqlite" }, {}), /^invalid setting --store: 'db.sqlite' /],
    [
      "blobs",
      () => resolveConfig({}, { SLUICE_BLOBS: "s3://X/y" }),
      /^invalid setting SLUICE_BLOBS: 's3:\/\/X\/y' names no valid bucket \(accepted: a folder, or s3:\/\/bucket\/prefix\)$/,
    ],
    [
      "S3 endpoint",
      () => resolveConfig({}, { SLUICE_S3_ENDPOINT: "minio:9000" }),
      /^invalid setting SLUICE_S3_ENDPOINT: 'minio:9000' is not an http\(s\) URL \(accepted: an http:\/\/ or https:\/\/ URL with a host and an optional port 1–65535\)$/,
    ],
    [
      "path style",
      () => resolveConfig({}, { SLUICE_S3_FORCE_PATH_STYLE: "no" }),
      /^invalid setting SLUICE_S3_FORCE_PATH_STYLE: 'no' is not a boolean \(accepted: true \| false\)$/,
    ],
    [
      "backend",
      () => resolveConfig({ backend: "localhost:8000" }, {}),
      /^invalid setting --backend: 'localhost:8000' is not an http\(s\) URL/,
    ],
    ["backend env", () => resolveConfig({}, { SLUICE_BACKEND: "ftp://x" }), /^invalid setting SLUICE_BACKEND: /],
    [
      "limit",
      () => resolveLimits({ SLUICE_MAX_LINES: "lots" }),
      /^invalid setting SLUICE_MAX_LINES: 'lots' is not an integer \(accepted: 1–1e9\)$/,
    ],
    [
      "limit range",
      () => resolveLimits({ SLUICE_MAX_FILE_BYTES: "0" }),
      /^invalid setting SLUICE_MAX_FILE_BYTES: '0' is out of range \(accepted: an integer ≥ 1 bytes\)$/,
    ],
    [
      "rate",
      () => resolveLimits({ SLUICE_RATE_LIMIT_RPS: "fast" }),
      /^invalid setting SLUICE_RATE_LIMIT_RPS: 'fast' is not a number \(accepted: a number 0–1e6; 0 = off\)$/,
    ],
    [
      "burst",
      () => resolveLimits({ SLUICE_RATE_LIMIT_BURST: "0" }),
      /^invalid setting SLUICE_RATE_LIMIT_BURST: '0' is out of range/,
    ],
    [
      "concurrent",
      () => resolveLimits({ SLUICE_MAX_CONCURRENT_BATCHES: "1e3" }),
      /^invalid setting SLUICE_MAX_CONCURRENT_BATCHES: '1e3' is not an integer/,
    ],
    [
      "tokens",
      () => resolveLimits({ SLUICE_MAX_ENQUEUED_TOKENS: "-5" }),
      /^invalid setting SLUICE_MAX_ENQUEUED_TOKENS: /,
    ],
    [
      "line bytes",
      () => resolveLimits({ SLUICE_MAX_LINE_BYTES: "9999999999" }),
      /^invalid setting SLUICE_MAX_LINE_BYTES: '9999999999' is out of range/,
    ],
    [
      "input prefixes",
      () => resolveLimits({ SLUICE_S3_INPUT_PREFIXES: "s3://ok-bucket/a,http://x/y" }),
      /^invalid setting SLUICE_S3_INPUT_PREFIXES: entry 2 .*\(accepted: comma-separated s3:\/\/bucket\/prefix\)$/,
    ],
    [
      "metrics auth",
      () => resolveServer({}, { SLUICE_METRICS_AUTH: "open" }),
      /^invalid setting SLUICE_METRICS_AUTH: 'open' is not an accepted value \(accepted: admin \| none\)$/,
    ],
    [
      "port",
      () => resolveServer({ port: "http" }, {}),
      /^invalid setting --port: 'http' is not an integer \(accepted: 0–65535; 0 = any free port\)$/,
    ],
    [
      "port env",
      () => resolveServer({}, { SLUICE_PORT: "70000" }),
      /^invalid setting SLUICE_PORT: '70000' is out of range/,
    ],
    [
      "window",
      () => resolveRunConfig({ window: "forever" }, {}),
      /^invalid setting --window: 'forever' is not a duration \(accepted: a duration such as 90m, 24h or 7d \(1s to 30d\)\)$/,
    ],
    [
      "client URL",
      () => resolveClient({}, { SLUICE_BASE_URL: "127.0.0.1:8080", SLUICE_API_KEY: "sk-0123456789abcdef" }),
      /^invalid setting SLUICE_BASE_URL: /,
    ],
    [
      "sim flag",
      () => simOptionsFromFlags({ ...SIM, slots: "many" }),
      /^invalid setting --slots: 'many' is not an integer/,
    ],
    [
      "sim rate",
      () => simOptionsFromFlags({ ...SIM, fault500: "2" }),
      /^invalid setting --fault-500: '2' is out of range \(accepted: a number 0–1\)$/,
    ],
  ];
  it.each(cases)("%s", (_, fn, expected) => {
    expect(configError(fn)).toMatch(expected);
  });

  it("never echoes a secret, nor a URL holding credentials", () => {
    const secret = "sk-short";
    const m1 = configError(() => resolveServer({}, { SLUICE_API_KEY: secret }));
    expect(m1).toBe(
      "invalid setting SLUICE_API_KEY: the value is invalid (accepted: a key of at least 16 printable characters)",
    );
    const m2 = configError(() => resolveConfig({}, { SLUICE_DATABASE_URL: "mysql://root:hunter2@db/x" }));
    expect(m2).toBe(
      "invalid setting SLUICE_DATABASE_URL: the value is invalid (accepted: postgres://… or postgresql://… or sqlite:PATH)",
    );
    const m3 = configError(() => resolveConfig({}, { SLUICE_MASTER_KEY: "not-base64!!" }));
    expect(m3).toMatch(/^invalid setting SLUICE_MASTER_KEY: .*\(accepted: \[id:\]base64 of 32 bytes/);
    expect(m3).not.toContain("not-base64");
    const m4 = configError(() => resolveConfig({}, { SLUICE_MASTER_KEY: KEY, SLUICE_MASTER_KEY_FILE: "/k" }));
    expect(m4).toMatch(/not both/);
    expect(configError(() => resolveConfig({}, { AWS_SECRET_ACCESS_KEY: "\n" }))).not.toContain("\n");
  });

  it("keeps a long or multi-line value to one short line", () => {
    const m = configError(() => resolveConfig({ maxAttempts: `${"9".repeat(100)}\nx` }, {}));
    expect(m).not.toContain("\n");
    expect(m).toMatch(/^invalid setting --max-attempts: '9{40}…' is not an integer/);
  });
});

describe("resolveConfig: good values", () => {
  it("parses flags and environment into typed options", () => {
    const { common, execution } = resolveConfig(
      { maxAttempts: "3", threads: "4", leaseMs: "5000", timeoutMs: "2500", logLevel: "debug", data: "/tmp/sluice-x" },
      {
        SLUICE_DATABASE_URL: "postgres://u:p@db:5432/sluice",
        SLUICE_BLOBS: "s3://my-bucket/sluice",
        SLUICE_S3_ENDPOINT: "http://minio:9000",
        AWS_REGION: "eu-west-3",
        SLUICE_MAX_LINES: "500",
        SLUICE_MAX_FILE_BYTES: "1048576",
        SLUICE_RATE_LIMIT_RPS: "0.5",
        SLUICE_MAX_ERRORS_KEPT: "10",
        SLUICE_MODEL_CACHE: "/models",
        SLUICE_BACKEND: "http://127.0.0.1:8000/v1",
        SLUICE_MASTER_KEY: `k1:${KEY}`,
        HF_TOKEN: "hf_x",
        OPENAI_KEY: "sk-upstream",
      },
    );
    expect(execution).toMatchObject({
      maxAttempts: 3,
      threads: 4,
      leaseMs: 5000,
      timeoutMs: 2500,
      modelCacheDir: "/models",
      hfToken: "hf_x",
      backend: "http://127.0.0.1:8000/v1",
    });
    expect(execution.apiKeyFromEnv?.("OPENAI_KEY")).toBe("sk-upstream");
    expect(execution.apiKeyFromEnv?.("NOPE")).toBeUndefined();
    expect(common).toMatchObject({
      dataDir: "/tmp/sluice-x",
      store: { kind: "postgres", url: "postgres://u:p@db:5432/sluice" },
      blobs: "s3://my-bucket/sluice",
      s3: { region: "eu-west-3", endpoint: "http://minio:9000", forcePathStyle: true },
      logLevel: "debug",
      limits: { ...DEFAULT_LIMITS, maxLines: 500, maxFileBytes: 1048576, rateLimitPerSecond: 0.5, maxErrorsKept: 10 },
    });
    expect(common.masterKeys?.current.id).toBe("k1");
  });

  it("applies the defaults when nothing is set (empty variables count as unset)", () => {
    const { common, execution } = resolveConfig({}, { SLUICE_LOG_LEVEL: "", SLUICE_MAX_LINES: "" });
    expect(common).toMatchObject({ logLevel: "info", limits: DEFAULT_LIMITS, masterKeys: undefined, blobs: undefined });
    expect(common.store).toEqual({ kind: "sqlite", path: join(common.dataDir, "sluice.db") });
    expect(execution).toMatchObject({ maxAttempts: undefined, threads: undefined, backend: undefined });
    expect(resolveServer({}, {})).toEqual({ host: "127.0.0.1", port: 8080, metricsAuth: "admin", apiKey: undefined });
    expect(resolveServer({ port: "0" }, { SLUICE_PORT: "9000" }).port).toBe(0);
    expect(resolveServer({}, { SLUICE_PORT: "9000" }).port).toBe(9000);
    expect(resolveRunConfig({}, {})).toMatchObject({ logLevel: "warn", window: "30d" });
    expect(resolveClient({}, { SLUICE_API_KEY: "sk-0123456789abcdef", SLUICE_BASE_URL: "https://h/v1/" })).toEqual({
      baseUrl: "https://h/v1",
      apiKey: "sk-0123456789abcdef",
    });
  });
});

const SIM = {
  host: "127.0.0.1",
  port: "0",
  fault500: "0",
  fault429: "0",
  faultReset: "0",
  faultHang: "0",
  seed: "1",
  zeroCost: false,
};

describe("the real CLI stops on a bad setting before anything runs", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sluice-config-"));
    await writeFile(
      join(dir, "in.jsonl"),
      '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{}}\n',
    );
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  const cli = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: dir, ...env },
      encoding: "utf8",
      timeout: 30_000,
    });
    return { code: r.status, stderr: r.stderr, stdout: r.stdout };
  };

  it("sluice run --max-attempts five", () => {
    const work = join(dir, "work");
    const r = cli([
      "run",
      join(dir, "in.jsonl"),
      "-o",
      join(dir, "out.jsonl"),
      "--work-dir",
      work,
      "--max-attempts",
      "five",
    ]);
    expect(r).toEqual({
      code: 2,
      stdout: "",
      stderr: "sluice: invalid setting --max-attempts: 'five' is not an integer (accepted: 1–100)\n",
    });
    expect(existsSync(work)).toBe(false);
  });

  it("SLUICE_LOG_LEVEL=verbose sluice serve", () => {
    const data = join(dir, "serve-data");
    const r = cli(["serve", "--port", "0", "--data", data], { SLUICE_LOG_LEVEL: "verbose" });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      "sluice: invalid setting SLUICE_LOG_LEVEL: 'verbose' is not an accepted value (accepted: debug | info | warn | error | silent)\n",
    );
    expect(existsSync(data)).toBe(false);
  });

  it("a bad SLUICE_MAX_LINES, for serve and for keys", () => {
    const data = join(dir, "keys-data");
    for (const args of [
      ["serve", "--port", "0", "--data", data],
      ["keys", "list", "--data", data],
    ]) {
      const r = cli(args, { SLUICE_MAX_LINES: "10k" });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe("sluice: invalid setting SLUICE_MAX_LINES: '10k' is not an integer (accepted: 1–1e9)\n");
    }
    expect(existsSync(data)).toBe(false);
  });
});

describe("the environment is read only by the configuration", () => {
  it("no file under src/ but src/config.ts and src/config/ mentions process.env", () => {
    const src = join(ROOT, "src");
    const offenders: string[] = [];
    const walk = (d: string) => {
      for (const name of readdirSync(d)) {
        const p = join(d, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (/\.[cm]?[jt]s$/.test(name) && readFileSync(p, "utf8").includes("process.env"))
          offenders.push(relative(src, p));
      }
    };
    walk(src);
    expect(offenders.filter((f) => f !== "config.ts" && !f.startsWith("config/"))).toEqual([]);
  });
});
