/**
 * Start-up checks through the real CLI: a mistaken engine setting stops the process with exit 2 and
 * one line naming the setting before anything is created; a backend that does not answer is a
 * warning naming its URL and the cause, and the process carries on.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, ROOT, sluice } from "../helpers/cli.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine } from "../helpers/server.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-startup-"));
  await writeFile(join(dir, "in.jsonl"), `${chatLine("a", "hi", "llama-3-8b")}\n`);
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

async function routingFile(name: string, backends: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `routes:\n  - match: "llama-3*"\n    backends:\n${backends}`);
  return path;
}

/** A loopback port nobody listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address() as { port: number };
  await new Promise<void>((ok) => server.close(() => ok()));
  return port;
}

describe("a mistaken engine setting: exit 2, one line naming it, nothing created", () => {
  const run = (name: string, args: string[], env: Record<string, string> = {}) => {
    const out = join(dir, `${name}.out`);
    const work = join(dir, `${name}-work`);
    const r = cli(["run", join(dir, "in.jsonl"), "-o", out, "--work-dir", work, ...args], env);
    return { ...r, created: [out, work].filter((p) => existsSync(p)) };
  };

  it("--backend without a scheme, and with a mistyped one", () => {
    expect(run("no-scheme", ["--backend", "localhost:8000"])).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "sluice: invalid setting --backend: 'localhost:8000' is not an http(s) URL (accepted: an http:// or https:// URL with a host and an optional port 1–65535)\n",
      created: [],
    });
    expect(run("htp", [], { SLUICE_BACKEND: "htp://vllm:8000/v1" })).toMatchObject({
      code: 2,
      stderr:
        "sluice: invalid setting SLUICE_BACKEND: 'htp://vllm:8000/v1' is not an http(s) URL (accepted: an http:// or https:// URL with a host and an optional port 1–65535)\n",
      created: [],
    });
  });

  it("a routing file whose url is htp://…: the entry and the file are named", async () => {
    const file = await routingFile(
      "htp.yaml",
      "      - url: http://vllm-a:8000/v1\n      - url: htp://vllm-b:8000/v1\n",
    );
    expect(run("file-htp", ["--config", file])).toEqual({
      code: 2,
      stdout: "",
      stderr: `sluice: invalid setting routes[0].backends[1].url in ${file}: 'htp://vllm-b:8000/v1' is not an http(s) URL (accepted: an http:// or https:// URL with a host and an optional port 1–65535)\n`,
      created: [],
    });
  });

  it("a routing file whose url has a bad port", async () => {
    for (const [name, port] of [
      ["too-big", "99999"],
      ["zero", "0"],
      ["letters", "80a"],
    ] as const) {
      const file = await routingFile(`port-${name}.yaml`, `      - url: http://vllm:${port}/v1\n`);
      expect(run(`port-${name}`, ["--config", file])).toEqual({
        code: 2,
        stdout: "",
        stderr: `sluice: invalid setting routes[0].backends[0].url in ${file}: 'http://vllm:${port}/v1' has port ${port}, which is not a port number (accepted: an http:// or https:// URL with a host and an optional port 1–65535)\n`,
        created: [],
      });
    }
  });

  it("a llama-cpp model path that does not exist, in a routing file and as --model", async () => {
    const missing = join(dir, "missing.gguf");
    const accepted = "(accepted: a .gguf path, demo, hf:user/repo[:quant] or an https URL)";
    const file = await routingFile("model.yaml", `      - engine: llama-cpp\n        model: ${missing}\n`);
    expect(run("file-model", ["--config", file])).toEqual({
      code: 2,
      stdout: "",
      stderr: `sluice: invalid setting routes[0].backends[0].model in ${file}: '${missing}' does not exist ${accepted}\n`,
      created: [],
    });
    expect(run("flag-model", ["--model", missing])).toEqual({
      code: 2,
      stdout: "",
      stderr: `sluice: invalid setting --model: '${missing}' does not exist ${accepted}\n`,
      created: [],
    });
    expect(run("flag-folder", ["--model", dir])).toMatchObject({
      code: 2,
      stderr: `sluice: invalid setting --model: '${dir}' is not a file ${accepted}\n`,
      created: [],
    });
  });

  it("an api_key_env naming a variable that is not set", async () => {
    const file = await routingFile("key.yaml", "      - url: http://vllm:8000/v1\n        api_key_env: VLLM_KEY\n");
    expect(run("key", ["--config", file])).toEqual({
      code: 2,
      stdout: "",
      stderr: `sluice: invalid setting routes[0].backends[0].api_key_env in ${file}: names "VLLM_KEY", which is not set (accepted: the name of a set, non-empty environment variable)\n`,
      created: [],
    });
  });

  it("a run file naming a model with no route", async () => {
    const file = await routingFile("routed.yaml", "      - url: http://127.0.0.1:9/v1\n");
    const input = join(dir, "other-model.jsonl");
    await writeFile(input, `${chatLine("a", "hi", "llama-3-8b")}\n${chatLine("b", "hi", "gpt-4o-mini")}\n`);
    const out = join(dir, "no-route.out");
    const work = join(dir, "no-route-work");
    const r = cli(["run", input, "-o", out, "--work-dir", work, "--config", file]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(
      /^sluice: no route of \S+ matches model 'gpt-4o-mini' \(line 2\): add a route whose match covers it[^\n]*\n$/,
    );
    expect(existsSync(out) || existsSync(work)).toBe(false);
  });

  it("serve and worker stop the same way, before the data folder exists", async () => {
    const file = await routingFile("serve.yaml", "      - url: htp://vllm:8000/v1\n");
    const data = join(dir, "serve-data");
    const line = `sluice: invalid setting routes[0].backends[0].url in ${file}: 'htp://vllm:8000/v1' is not an http(s) URL (accepted: an http:// or https:// URL with a host and an optional port 1–65535)\n`;
    expect(cli(["serve", "--port", "0", "--data", data, "--config", file])).toEqual({
      code: 2,
      stdout: "",
      stderr: line,
    });
    expect(cli(["serve", "--port", "0", "--data", data, "--backend", "localhost:8000"])).toMatchObject({
      code: 2,
      stderr:
        "sluice: invalid setting --backend: 'localhost:8000' is not an http(s) URL (accepted: an http:// or https:// URL with a host and an optional port 1–65535)\n",
    });
    // A worker needs PostgreSQL; the engine settings are refused before it connects to it.
    expect(cli(["worker", "--store", "postgres://127.0.0.1:9/none", "--config", file])).toEqual({
      code: 2,
      stdout: "",
      stderr: line,
    });
    expect(existsSync(data)).toBe(false);
  });
});

describe("a backend nobody listens on: a warning, and the process carries on", () => {
  let fake: FakeBackend;
  beforeAll(async () => {
    fake = await startFakeBackend();
  });
  afterAll(async () => fake.close());

  const warning = (url: string) => `backend ${url} is not reachable (ECONNREFUSED); its batches wait until it answers`;

  it("sluice run warns on stderr (default log level) and runs the lines routed elsewhere", async () => {
    const down = `http://127.0.0.1:${await closedPort()}/v1`;
    const file = join(dir, "one-down.yaml");
    await writeFile(
      file,
      `routes:\n  - match: "llama-3*"\n    backends:\n      - url: ${fake.url}\n  - match: qwen\n    backends:\n      - url: ${down}\n`,
    );
    const out = join(dir, "one-down.out");
    const c = sluice(
      ["run", join(dir, "in.jsonl"), "-o", out, "--work-dir", join(dir, "one-down-work"), "--config", file],
      {
        SLUICE_LOG_LEVEL: "",
      },
    );
    expect(await c.exited).toBe(0);
    const lines = c
      .output()
      .split("\n")
      .filter((l) => l.includes("is not reachable"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(warning(down));
    expect((await readFile(out, "utf8")).trim().split("\n")).toHaveLength(1);
  });

  it("sluice serve warns and keeps serving (/health answers)", async () => {
    const down = `http://127.0.0.1:${await closedPort()}/v1`;
    const c = sluice(["serve", "--port", "0", "--data", join(dir, "serve-down"), "--backend", down], {
      SLUICE_LOG_LEVEL: "info",
    });
    try {
      const [, base] = await c.waitFor(/Sluice listening on (http:\/\/\S+)\/v1/);
      await c.waitFor(new RegExp(warning(down).replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")));
      const res = await fetch(`${base}/health`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok" });
    } finally {
      c.proc.kill("SIGTERM");
      await c.exited;
    }
  });
});
