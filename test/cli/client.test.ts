/** The client commands against a real `sluice serve` child: submit --wait, status, results, list, cancel. */
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Child, sluice } from "../helpers/cli.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine } from "../helpers/server.js";

const KEY = "sk-client-test-key";
let dir: string;
let fake: FakeBackend;
let server: Child;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-client-"));
  fake = await startFakeBackend((call) =>
    call.customKey.includes("slow") ? { kind: "ok", delayMs: 60_000 } : { kind: "ok" },
  );
  server = sluice(["serve", "--port", "0", "--data", join(dir, "data"), "--backend", fake.url], {
    SLUICE_API_KEY: KEY,
  });
  const [, url] = (await server.waitFor(/listening on (\S+)/)) as RegExpMatchArray;
  env = { SLUICE_BASE_URL: url as string, SLUICE_API_KEY: KEY };
});
afterAll(async () => {
  server.proc.kill("SIGTERM");
  await server.exited;
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]) {
  const c = sluice(args, env);
  const code = await c.exited;
  return { code, out: c.output() };
}

it("submits and waits, then shows status, results and the list", async () => {
  const input = join(dir, "in.jsonl");
  await writeFile(input, `${[chatLine("a", "one"), chatLine("b", "two")].join("\n")}\n`);
  const submitted = await run(["submit", input, "--wait", "--json"]);
  expect(submitted.code).toBe(0);
  const batch = JSON.parse(submitted.out.trim().split("\n").pop() as string) as { id: string; status: string };
  expect(batch.status).toBe("completed");

  const status = await run(["status", batch.id]);
  expect(status.out).toContain(`${batch.id}  completed  2/2 done, 0 failed`);

  const outFile = join(dir, "results.jsonl");
  expect((await run(["results", batch.id, "-o", outFile])).code).toBe(0);
  const results = (await readFile(outFile, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { custom_id: string });
  expect(results.map((r) => r.custom_id)).toEqual(["a", "b"]);

  const list = await run(["list", "--json"]);
  expect((JSON.parse(list.out) as { id: string }[]).map((b) => b.id)).toContain(batch.id);
});

it("cancels a running batch and reports API errors clearly", async () => {
  const input = join(dir, "slow.jsonl");
  await writeFile(input, `${chatLine("s", "slow one")}\n`);
  const submitted = await run(["submit", input, "--json"]);
  const { id } = JSON.parse(submitted.out.trim()) as { id: string };
  const cancelled = await run(["cancel", id, "--json"]);
  expect(["cancelling", "cancelled"]).toContain((JSON.parse(cancelled.out) as { status: string }).status);
  const waited = await run(["status", id, "--wait", "--json"]);
  expect((JSON.parse(waited.out.trim().split("\n").pop() as string) as { status: string }).status).toBe("cancelled");

  const missing = await run(["status", "batch_missing"]);
  expect(missing.code).toBe(2);
  expect(missing.out).toMatch(/HTTP 404: No batch found/);
});

it("takes --base-url and --api-key, and names the target when the server cannot be reached", async () => {
  const viaFlags = sluice(["list", "--json", "--base-url", env.SLUICE_BASE_URL as string, "--api-key", KEY], {
    SLUICE_BASE_URL: "",
    SLUICE_API_KEY: "",
  });
  expect(await viaFlags.exited).toBe(0);
  expect(JSON.parse(viaFlags.output()) as unknown).toBeInstanceOf(Array);

  // A port nothing listens on: bound, then closed.
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const port = (probe.address() as AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const away = sluice(["list", "--base-url", `http://127.0.0.1:${port}/v1`, "--api-key", KEY], {});
  expect(await away.exited).toBe(2);
  expect(away.output()).toContain(
    `sluice: cannot reach Sluice at http://127.0.0.1:${port}/v1 (ECONNREFUSED): is \`sluice serve\` running? set SLUICE_BASE_URL or pass --base-url`,
  );

  const missing = await run(["submit", join(dir, "no-such-file.jsonl")]);
  expect(missing.code).toBe(2);
  expect(missing.out).toContain(`input file not found: ${join(dir, "no-such-file.jsonl")}`);
});
