/**
 * `sluice retry` against a real `sluice serve` child: a batch whose engine failed half its lines
 * with a 400 is retried; only those lines are called again, the retry batch's output holds every
 * custom_id once, in input order, and `sluice status` shows how many lines were reused.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Child, sluice } from "../helpers/cli.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine } from "../helpers/server.js";

const KEY = "sk-retry-test-key";
let dir: string;
let fake: FakeBackend;
let server: Child;
let env: Record<string, string>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-retry-"));
  fake = await startFakeBackend((call) =>
    call.customKey.includes("half-fail") && call.attempt === 1 ? { kind: "status", status: 400 } : { kind: "ok" },
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

const lastJson = <T>(out: string) => JSON.parse(out.trim().split("\n").pop() as string) as T;
/** Calls for the input's lines (the server's start-up probe of the engine is not one of them). */
const lineCalls = () => [...fake.counts].filter(([k]) => k !== "echo:");
const calls = () => lineCalls().reduce((a, [, n]) => a + n, 0);

it("retries only the failed lines; the retry's output holds every line once, in input order", async () => {
  const lines = Array.from({ length: 10 }, (_, i) => chatLine(`c${i}`, i % 2 ? `half-fail ${i}` : `ok ${i}`));
  const input = join(dir, "in.jsonl");
  await writeFile(input, `${lines.join("\n")}\n`);
  const first = await run(["submit", input, "--wait", "--json"]);
  expect(first.code).toBe(1); // ended with failed lines
  const batch = lastJson<{ id: string; request_counts: { failed: number } }>(first.out);
  expect(batch.request_counts.failed).toBe(5);
  expect(calls()).toBe(10);

  const early = await run(["retry", "batch_missing"]);
  expect(early.code).toBe(2);
  expect(early.out).toMatch(/HTTP 404/);

  const retried = await run(["retry", batch.id, "--wait", "--json"]);
  expect(retried.code).toBe(0);
  const retry = lastJson<{ id: string; status: string; reuse: { reused: number } }>(retried.out);
  expect(retry).toMatchObject({ status: "completed", reuse: { reused: 5 } });
  expect(retry.id).not.toBe(batch.id);
  expect(calls()).toBe(15);
  for (const [prompt, n] of lineCalls()) expect(n).toBe(prompt.includes("half-fail") ? 2 : 1);

  const status = await run(["status", retry.id]);
  expect(status.out).toContain(`${retry.id}  completed  10/10 done, 0 failed`);
  expect(status.out).toContain("without a call: 5 reused from earlier batches, 0 merged with identical lines");

  const outFile = join(dir, "retry.jsonl");
  expect((await run(["results", retry.id, "-o", outFile])).code).toBe(0);
  const results = (await readFile(outFile, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number }; reused_from?: string });
  expect(results.map((r) => r.custom_id)).toEqual(lines.map((_, i) => `c${i}`));
  expect(results.every((r) => r.response.status_code === 200)).toBe(true);
  expect(results.map((r) => r.reused_from ?? null)).toEqual(lines.map((_, i) => (i % 2 ? null : batch.id)));
});
