/**
 * Rerun semantics of `sluice run`: a rerun after failed lines retries only those (the finished ones
 * are reused, not called again), `--fresh` starts over, an edited input starts a new batch
 * keeping its unchanged lines, the work folder goes away after a run where every line succeeded
 * (unless --keep-work-dir), and a file refused at validation writes no output file.
 * The engine is a real loopback server that fails chosen lines on their first call.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, sluice } from "../helpers/cli.js";
import { expectedContent, type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine } from "../helpers/server.js";

type Out = {
  custom_id: string;
  response: { status_code: number; request_id: string; body: { choices: { message: { content: string } }[] } } | null;
  error: { code: string } | null;
};

let dir: string;
let fake: FakeBackend;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-rerun-"));
  // Lines whose prompt says "flaky" fail their first call (a 500, with one attempt allowed).
  fake = await startFakeBackend((call) =>
    call.customKey.includes("flaky") && call.attempt === 1 ? { kind: "status", status: 500 } : { kind: "ok" },
  );
});
afterAll(async () => {
  await fake.close();
  await rm(dir, { recursive: true, force: true });
});

async function writeInput(name: string, lines: string[]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `${lines.join("\n")}\n`);
  return path;
}

async function readOut(path: string): Promise<Out[]> {
  return (await readFile(path, "utf8"))
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Out);
}

/** Calls the engine received for prompts containing `tag`, by prompt. */
const callsFor = (tag: string) => new Map([...fake.counts].filter(([k]) => k.includes(tag)));
const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

/** `sluice run` with one attempt per line: a failed call fails its line at once. */
async function run(inPath: string, out: string, extra: string[], env: Record<string, string> = {}) {
  const c = sluice(["run", inPath, "-o", out, "--backend", fake.url, "--max-attempts", "1", ...extra], env);
  return { code: await c.exited, output: c.output() };
}

describe("sluice run reruns", () => {
  it("retries only the lines that failed; the finished ones are kept, not called again", async () => {
    const lines = Array.from({ length: 20 }, (_, i) =>
      chatLine(`r${i}`, i % 7 === 3 ? `retry flaky ${i}` : `retry ok ${i}`),
    );
    const inPath = await writeInput("retry.jsonl", lines);
    const out = join(dir, "retry.out.jsonl");
    const work = join(dir, "w-retry");
    const first = await run(inPath, out, ["--work-dir", work]);
    expect(first.code).toBe(1);
    expect(first.output).toContain("17 succeeded, 3 failed of 20");
    expect(first.output).toContain(`State kept in ${work}`);
    const before = await readOut(out);
    expect(before.filter((o) => o.response?.status_code === 500).map((o) => o.custom_id)).toEqual(["r3", "r10", "r17"]);
    expect(sum(callsFor("retry "))).toBe(20);

    const second = await run(inPath, out, ["--work-dir", work, "--keep-work-dir"]);
    expect(second.code).toBe(0);
    expect(second.output).toContain(`Retrying 3 failed lines of the last run (17 kept) in ${work}`);
    expect(second.output).toContain("20 succeeded, 0 failed of 20");
    // Only the three failed lines were called again.
    const calls = callsFor("retry ");
    expect(sum(calls)).toBe(23);
    for (const [prompt, n] of calls) expect(n).toBe(prompt.includes("flaky") ? 2 : 1);
    const after = await readOut(out);
    expect(after.map((o) => o.custom_id)).toEqual(lines.map((_, i) => `r${i}`));
    expect(after.every((o) => o.response?.status_code === 200)).toBe(true);
    // A kept line is the first run's answer, request id and all (the line's own id names the new batch).
    expect(after[0]?.response).toEqual(before[0]?.response);
    expect(after[5]?.response?.body.choices[0]?.message.content).toBe(
      expectedContent({ messages: [{ content: "retry ok 5" }] }),
    );
    // One batch in the folder: its counters cover every line, its usage only the lines called for
    // it (the reused lines' usage stays in their response bodies).
    const db = new Database(join(work, "sluice.db"), { readonly: true });
    try {
      const batches = db
        .prepare("SELECT completed, failed, total, reused, input_tokens, output_tokens FROM batches")
        .all();
      const promptTokens = [3, 10, 17].reduce(
        (n, i) => n + expectedContent({ messages: [{ content: `retry flaky ${i}` }] }).length,
        0,
      );
      expect(batches).toEqual([
        { completed: 20, failed: 0, total: 20, reused: 17, input_tokens: promptTokens, output_tokens: 3 * 3 },
      ]);
    } finally {
      db.close();
    }
    expect(existsSync(work)).toBe(true); // --keep-work-dir

    // Kept after success: a rerun calls nothing and writes the output again.
    await rm(out);
    const third = await run(inPath, out, ["--work-dir", work]);
    expect(third.code).toBe(0);
    expect(third.output).toContain(`Every line of the last run succeeded: writing ${out} again from ${work}`);
    expect(sum(callsFor("retry "))).toBe(23);
    expect(await readOut(out)).toEqual(after);
    expect(existsSync(work)).toBe(false); // no --keep-work-dir this time
  });

  it("--fresh discards the state and calls every line again", async () => {
    const lines = Array.from({ length: 8 }, (_, i) =>
      chatLine(`f${i}`, i === 2 ? `fresh flaky ${i}` : `fresh ok ${i}`),
    );
    const inPath = await writeInput("fresh.jsonl", lines);
    const out = join(dir, "fresh.out.jsonl");
    const work = join(dir, "w-fresh");
    expect((await run(inPath, out, ["--work-dir", work])).code).toBe(1);
    const again = await run(inPath, out, ["--work-dir", work, "--fresh"]);
    expect(again.code).toBe(0);
    expect(again.output).toContain(`Starting over (--fresh): the earlier state in ${work} was deleted`);
    expect(again.output).not.toContain("Retrying");
    const calls = callsFor("fresh ");
    expect(calls.size).toBe(8);
    for (const n of calls.values()) expect(n).toBe(2);
    expect((await readOut(out)).every((o) => o.response?.status_code === 200)).toBe(true);
    expect(existsSync(work)).toBe(false);
  });

  it("an edited input starts a new batch by itself, keeping the unchanged lines (encrypted at rest)", async () => {
    const env = { SLUICE_MASTER_KEY: randomBytes(32).toString("base64") };
    const original = Array.from({ length: 10 }, (_, i) =>
      chatLine(`e${i}`, i === 1 || i === 6 ? `edit flaky ${i}` : `edit ok ${i}`),
    );
    const inPath = await writeInput("edit.jsonl", original);
    const out = join(dir, "edit.out.jsonl");
    const work = join(dir, "w-edit");
    expect((await run(inPath, out, ["--work-dir", work], env)).code).toBe(1);
    expect(sum(callsFor("edit "))).toBe(10);

    // Line 4 asks something else, line 8 is gone, a new line at the end, and the first two swap
    // places: kept lines are matched by custom_id and body, not by line number.
    const edited = [original[1], original[0], original[2], original[3], chatLine("e4", "edit changed 4")]
      .concat(original.slice(5, 8), [original[9], chatLine("e10", "edit new 10")])
      .map(String);
    await writeInput("edit.jsonl", edited);
    const second = await run(inPath, out, ["--work-dir", work], env);
    expect(second.code).toBe(0);
    expect(second.output).toContain(`The input changed since the last run: starting a new batch in ${work}`);
    // Kept: e0, e2, e3, e5, e7, e9; run: e1 and e6 (failed before), e4 (changed), e10 (new).
    expect(second.output).toContain("6 unchanged lines of the last run kept, 4 to run");
    const calls = callsFor("edit ");
    expect(sum(calls)).toBe(14);
    for (const [prompt, n] of calls) expect(n).toBe(prompt.includes("flaky") ? 2 : 1);
    const got = await readOut(out);
    expect(got.map((o) => o.custom_id)).toEqual(["e1", "e0", "e2", "e3", "e4", "e5", "e6", "e7", "e9", "e10"]);
    expect(got.every((o) => o.response?.status_code === 200)).toBe(true);
    expect(got[4]?.response?.body.choices[0]?.message.content).toBe(
      expectedContent({ messages: [{ content: "edit changed 4" }] }),
    );
    expect(existsSync(work)).toBe(false);
  });

  it("prints the default work folder and its size, and removes it after a run where every line succeeded", async () => {
    const inPath = await writeInput("default.jsonl", [chatLine("d0", "default ok 0"), chatLine("d1", "default ok 1")]);
    const out = join(dir, "default.out.jsonl");
    const c = await run(inPath, out, []);
    expect(c.code).toBe(0);
    const m = /Work folder (\S+) \((\d+(\.\d)? (B|KiB|MiB))\)\n/.exec(c.output);
    expect(m?.[1]).toMatch(new RegExp(`^${join(ROOT, ".sluice-run")}/[0-9a-f]{16}$`));
    expect(c.output).toContain(`Work folder ${m?.[1]} removed (--keep-work-dir keeps it)`);
    expect(existsSync(m?.[1] ?? "")).toBe(false);
  });

  it("a file refused at validation writes no output file, and a rerun after it keeps the last good run", async () => {
    const out = join(dir, "invalid.out.jsonl");
    const work = join(dir, "w-invalid");
    const bad = await writeInput("invalid.jsonl", [chatLine("v0", "valid ok 0"), "{oops"]);
    const refused = await run(bad, out, ["--work-dir", work]);
    expect(refused.code).toBe(2);
    expect(refused.output).toMatch(/line 2: invalid_json_line/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(work)).toBe(false); // a first run refused: nothing worth keeping

    // A run with a failed line, then an edit that breaks the file: refused, the last run kept…
    const good = [chatLine("v0", "valid ok 0"), chatLine("v1", "valid flaky 1"), chatLine("v2", "valid ok 2")];
    await writeInput("invalid.jsonl", good);
    expect((await run(bad, out, ["--work-dir", work])).code).toBe(1);
    const firstOut = await readFile(out, "utf8");
    await writeInput("invalid.jsonl", [...good, "{oops"]);
    expect((await run(bad, out, ["--work-dir", work])).code).toBe(2);
    expect(await readFile(out, "utf8")).toBe(firstOut);
    expect(existsSync(work)).toBe(true);
    // …so fixing the file still reuses what that run finished.
    await writeInput("invalid.jsonl", [...good, chatLine("v3", "valid ok 3")]);
    const fixed = await run(bad, out, ["--work-dir", work]);
    expect(fixed.code).toBe(0);
    expect(fixed.output).toContain("2 unchanged lines of the last run kept, 2 to run");
    const calls = callsFor("valid ");
    expect(sum(calls)).toBe(5);
  });
});
