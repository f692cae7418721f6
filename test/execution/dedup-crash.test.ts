/**
 * Exactly-once with dedup: `sluice serve` as a child process runs a batch of identical
 * deterministic lines (each body five times) and is killed with -9 twice while leaders' answers
 * are being written for their followers. At each kill no leader has a verdict its followers lack
 * (or the other way round): the fan-out is in the verdict's transaction. After the restarts every
 * custom_id is in the output exactly once, in input order, with its body's answer.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import OpenAI, { toFile } from "openai";
import { afterAll, expect, it } from "vitest";
import { type Child, sluice } from "../helpers/cli.js";
import { expectedContent, type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";
import { chatLine } from "../helpers/server.js";

const KEY = "sk-dedup-crash-test-key";
let dir: string;
let fake: FakeBackend;
let child: Child | undefined;

afterAll(async () => {
  child?.proc.kill("SIGKILL");
  await fake?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function start(): Promise<{ child: Child; client: OpenAI }> {
  const c = sluice(["serve", "--port", "0", "--data", dir, "--backend", fake.url, "--lease-ms", "1500"], {
    SLUICE_API_KEY: KEY,
  });
  const [, url] = (await c.waitFor(/listening on (\S+)/)) as RegExpMatchArray;
  return { child: c, client: new OpenAI({ baseURL: url, apiKey: KEY, maxRetries: 2 }) };
}

/** Lines whose leader and followers disagree on whether they are answered (must be none). */
function splitGroups(db: Database.Database): number {
  const row = db
    .prepare(
      `SELECT count(*) AS n FROM requests f JOIN requests l ON l.batch_id = f.batch_id AND l.line = f.dup_of
       WHERE (f.status = 'merged') <> (l.status IN ('pending', 'running'))`,
    )
    .get() as { n: number };
  return row.n;
}

it("kill -9 during a dedup batch: every custom_id exactly once, with its answer", async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-dedup-crash-"));
  fake = await startFakeBackend(() => ({ kind: "ok", delayMs: 5 + Math.floor(Math.random() * 20) }));
  const distinct = 600;
  const n = distinct * 5;
  const prompt = (i: number) => `same ${i % distinct}`;
  const lines = Array.from({ length: n }, (_, i) => chatLine(`d-${i}`, prompt(i), "test-model", { temperature: 0 }));
  let s = await start();
  child = s.child;
  const file = await s.client.files.create({
    file: await toFile(Buffer.from(`${lines.join("\n")}\n`), "in.jsonl"),
    purpose: "batch",
  });
  const batch = await s.client.batches.create({
    input_file_id: file.id,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });

  for (const fraction of [0.3, 0.7]) {
    while (fake.counts.size < distinct * fraction) await new Promise((r) => setTimeout(r, 5));
    s.child.proc.kill("SIGKILL");
    await s.child.exited;
    const db = new Database(join(dir, "sluice.db"), { readonly: true });
    const merged = db.prepare("SELECT count(*) AS n FROM requests WHERE status = 'merged'").get() as { n: number };
    expect(merged.n).toBeGreaterThan(0);
    expect(splitGroups(db)).toBe(0);
    db.close();
    s = await start();
    child = s.child;
  }
  let done = await s.client.batches.retrieve(batch.id);
  for (let i = 0; i < 2000 && done.status !== "completed"; i++) {
    await new Promise((r) => setTimeout(r, 50));
    done = await s.client.batches.retrieve(batch.id);
  }
  expect(done.status).toBe("completed");
  expect(done.request_counts).toEqual({ total: n, completed: n, failed: 0 });
  expect((done as unknown as { dedup: { merged: number } }).dedup.merged).toBe(n - distinct);
  const text = await (await s.client.files.content(done.output_file_id as string)).text();
  const out = text
    .split("\n")
    .filter(Boolean)
    .map(
      (l) =>
        JSON.parse(l) as {
          custom_id: string;
          merged_with?: string;
          response: { body: { choices: { message: { content: string } }[] } };
        },
    );
  expect(out).toHaveLength(n);
  for (const [i, o] of out.entries()) {
    expect(o.custom_id).toBe(`d-${i}`);
    expect(o.merged_with).toBe(i < distinct ? undefined : `d-${i % distinct}`);
    expect(o.response.body.choices[0]?.message.content).toBe(expectedContent({ messages: [{ content: prompt(i) }] }));
  }
  // Only leaders are ever called: the repeats are leaders held at a kill, never followers.
  // (Other calls, such as the engine probe at start, ask no prompt of the batch.)
  const asked = fake.calls.filter((c) => c.customKey.startsWith("echo:same "));
  expect(new Set(asked.map((c) => c.customKey)).size).toBe(distinct);
  expect(asked.length).toBeLessThan(distinct * 2);
}, 120_000);
