/** `sluice run`: one-shot local batches, resumable after an interruption. */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluice } from "../helpers/cli.js";
import { expectedContent, type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine } from "../helpers/server.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-run-"));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function input(name: string, lines: string[]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${lines.join("\n")}\n`);
  return path;
}

type Out = {
  custom_id: string;
  response: { status_code: number; body: { choices: { message: { content: string } }[] } } | null;
  error: { code: string } | null;
};
async function readOut(path: string): Promise<Out[]> {
  return (await readFile(path, "utf8"))
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Out);
}

describe("sluice run", () => {
  let fake: FakeBackend;
  beforeAll(async () => {
    fake = await startFakeBackend((call) =>
      call.customKey.includes("fail")
        ? { kind: "status", status: 400 }
        : { kind: "ok", delayMs: call.customKey.includes("slow") ? 30 : 0 },
    );
  });
  afterAll(async () => fake.close());

  it("refuses a file whose models have no engine, before creating anything (no silent demo model)", async () => {
    const inPath = await input("gpt.jsonl", [chatLine("a", "hi", "demo"), chatLine("b", "hi", "gpt-4o-mini")]);
    const out = join(dir, "gpt.out");
    const work = join(dir, "w-gpt");
    const c = sluice(["run", inPath, "-o", out, "--work-dir", work]);
    expect(await c.exited).toBe(2);
    expect(c.output()).toContain(
      "sluice: no engine is configured for model 'gpt-4o-mini' (line 2): pass --backend http://HOST:PORT/v1",
    );
    expect(existsSync(out)).toBe(false);
    expect(existsSync(work)).toBe(false);
    const missing = sluice(["run", join(dir, "nope.jsonl"), "-o", out, "--work-dir", work]);
    expect(await missing.exited).toBe(2);
    expect(missing.output()).toContain(`input file not found: ${join(dir, "nope.jsonl")}`);
  });

  it("runs a file and writes every line in input order", async () => {
    const lines = Array.from({ length: 200 }, (_, i) => chatLine(`r${i}`, `run ${i}`));
    const inPath = await input("ok.jsonl", lines);
    const out = join(dir, "ok.out.jsonl");
    // Kept (by default a run whose every line succeeded removes its work folder): looked into below.
    const c = sluice([
      "run",
      inPath,
      "-o",
      out,
      "--backend",
      fake.url,
      "--work-dir",
      join(dir, "w-ok"),
      "--keep-work-dir",
    ]);
    expect(await c.exited).toBe(0);
    const got = await readOut(out);
    expect(got.map((o) => o.custom_id)).toEqual(lines.map((_, i) => `r${i}`));
    expect(got[7]?.response?.body.choices[0]?.message.content).toBe(
      expectedContent({ messages: [{ content: "run 7" }] }),
    );
    expect(c.output()).toContain("200 succeeded, 0 failed");
    // Not a terminal (a pipe): progress lines instead of a bar, the last one at the end.
    expect(c.output()).toMatch(/completed: 200\/200 done, 0 failed\n/);
    // The results are written once, to -o: the embedded batch keeps no output files of its own.
    expect(existsSync(join(dir, "w-ok", "blobs", "files"))).toBe(true);
    expect(existsSync(join(dir, "w-ok", "blobs", "outputs"))).toBe(false);
  });

  it("exits 1 when lines failed, with the failures in the output", async () => {
    const inPath = await input("some-fail.jsonl", [chatLine("a", "fine"), chatLine("b", "please fail")]);
    const out = join(dir, "some-fail.out.jsonl");
    const c = sluice(["run", inPath, "-o", out, "--backend", fake.url, "--work-dir", join(dir, "w-fail")]);
    expect(await c.exited).toBe(1);
    const got = await readOut(out);
    expect(got.map((o) => [o.custom_id, o.response?.status_code])).toEqual([
      ["a", 200],
      ["b", 400],
    ]);
  });

  it("exits 2 on an invalid file and prints the line numbers", async () => {
    const inPath = await input("invalid.jsonl", [chatLine("a", "x"), "{oops", chatLine("a", "dup")]);
    const c = sluice([
      "run",
      inPath,
      "-o",
      join(dir, "invalid.out"),
      "--backend",
      fake.url,
      "--work-dir",
      join(dir, "w-inv"),
    ]);
    expect(await c.exited).toBe(2);
    expect(c.output()).toMatch(/line 2: invalid_json_line/);
    expect(c.output()).toMatch(/line 3: duplicate_custom_id/);
  });

  it("refuses `sluice worker` on an SQLite store: its claims live in the one process that owns it", async () => {
    const w = sluice(["worker", "--data", join(dir, "w-sqlite"), "--backend", fake.url]);
    expect(await w.exited).toBe(2);
    expect(w.output()).toMatch(/sluice worker` needs a store shared between processes: PostgreSQL/);
  });

  it("gives a clear error for a missing input or a bad config", async () => {
    const missing = sluice([
      "run",
      join(dir, "nope.jsonl"),
      "-o",
      join(dir, "x.out"),
      "--backend",
      fake.url,
      "--work-dir",
      join(dir, "w-miss"),
    ]);
    expect(await missing.exited).toBe(2);
    expect(missing.output()).toContain("Input file not found");
    const cfg = join(dir, "bad.yaml");
    await writeFile(cfg, "routes:\n  - match: x\n    backends: []\n");
    const inPath = await input("cfg.jsonl", [chatLine("a", "x")]);
    const bad = sluice(["run", inPath, "-o", join(dir, "cfg.out"), "--config", cfg, "--work-dir", join(dir, "w-cfg")]);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/invalid setting routes\[0\]\.backends in .*bad\.yaml: /);
  });

  for (const signal of ["SIGINT", "SIGKILL"] as const) {
    it(`resumes after ${signal}: a rerun continues where it stopped`, async () => {
      const n = 400;
      const lines = Array.from({ length: n }, (_, i) => chatLine(`s${i}`, `slow ${signal} ${i}`));
      const inPath = await input(`resume-${signal}.jsonl`, lines);
      const out = join(dir, `resume-${signal}.out.jsonl`);
      const args = [
        "run",
        inPath,
        "-o",
        out,
        "--backend",
        fake.url,
        "--work-dir",
        join(dir, `w-${signal}`),
        "--lease-ms",
        "1000",
      ];
      const before = fake.calls.length;
      const first = sluice(args);
      const mine = () => [...fake.counts.keys()].filter((k) => k.includes(`slow ${signal} `)).length;
      while (mine() < n / 3) await new Promise((r) => setTimeout(r, 10));
      first.proc.kill(signal);
      await first.exited;
      const doneAtStop = mine();
      expect(doneAtStop).toBeLessThan(n);
      const second = sluice(args);
      expect(await second.exited).toBe(0);
      expect(second.output()).toContain("Resuming batch");
      const got = await readOut(out);
      expect(got.map((o) => o.custom_id)).toEqual(lines.map((_, i) => `s${i}`));
      expect(got.every((o) => o.response?.status_code === 200)).toBe(true);
      // Work done before the interruption was not redone: far fewer than 2n calls in total.
      const calls = fake.calls.length - before;
      expect(calls).toBeLessThan(n + n / 3);
    });
  }
});
