/**
 * One process per SQLite data folder: a second `sluice serve` (or `sluice run` on the same work
 * folder) exits 2 naming the holder's pid, before it touches anything; the lock is the operating
 * system's, so it goes with its holder, kill -9 included.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Child, sluice } from "../helpers/cli.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";

const KEY = "sk-folder-lock-test-key";
let dir: string;
let fake: FakeBackend;
const children: Child[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-lock-"));
  fake = await startFakeBackend(() => ({ kind: "ok" }));
});
afterAll(async () => {
  for (const c of children) c.proc.kill("SIGKILL");
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

const serve = (data: string) => {
  const c = sluice(["serve", "--port", "0", "--data", data, "--backend", fake.url], { SLUICE_API_KEY: KEY });
  children.push(c);
  return c;
};

it("refuses a second serve on a folder in use, naming the holder, and frees it when the holder dies", async () => {
  const data = join(dir, "data");
  const first = serve(data);
  await first.waitFor(/listening on/);
  const second = serve(data);
  expect(await second.exited).toBe(2);
  expect(second.output()).toContain(`the data folder ${data} is in use by process ${first.proc.pid}`);

  const input = join(dir, "any.jsonl");
  await writeFile(input, "");
  const run = sluice(["run", input, "-o", join(dir, "out.jsonl"), "--work-dir", data, "--backend", fake.url]);
  children.push(run);
  expect(await run.exited).toBe(2);

  first.proc.kill("SIGKILL");
  await first.exited;
  const third = serve(data);
  await third.waitFor(/listening on/);
});
