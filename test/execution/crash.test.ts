/**
 * Crash safety: `sluice serve` as a child process, kill -9 at several points of a batch, restart
 * on the same data folder. The output must hold every custom_id exactly once with the right body,
 * and the backend must see no more repeated calls than were in flight at the kills.
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

const KEY = "sk-crash-test-key";
let dir: string;
let fake: FakeBackend;
let child: Child | undefined;

afterAll(async () => {
  child?.proc.kill("SIGKILL");
  await fake?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The journal's lines at a kill, and how many of them were still pending (held, not finished). */
function heldAtKill(db: Database.Database): { lines: number; pending: number } {
  const isPending = db.prepare("SELECT status = 'pending' AS p FROM requests WHERE batch_id = ? AND line = ?");
  let lines = 0;
  let pending = 0;
  for (const e of db.prepare("SELECT batch_id, lines FROM claim_ranges").all() as {
    batch_id: string;
    lines: string;
  }[]) {
    for (const line of e.lines.split(",").map(Number)) {
      lines++;
      pending += (isPending.get(e.batch_id, line) as { p: number }).p;
    }
  }
  return { lines, pending };
}

async function start(): Promise<{ child: Child; client: OpenAI }> {
  const c = sluice(["serve", "--port", "0", "--data", dir, "--backend", fake.url, "--lease-ms", "1500"], {
    SLUICE_API_KEY: KEY,
  });
  const [, url] = (await c.waitFor(/listening on (\S+)/)) as RegExpMatchArray;
  return { child: c, client: new OpenAI({ baseURL: url, apiKey: KEY, maxRetries: 2 }) };
}

it("survives kill -9 at several points with exactly-once results", async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-crash-"));
  fake = await startFakeBackend(() => ({ kind: "ok", delayMs: 5 + Math.floor(Math.random() * 20) }));
  const n = 1500;
  const lines = Array.from({ length: n }, (_, i) => chatLine(`c-${i}`, `crash ${i}`));
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

  let repeatBudget = 0;
  for (const fraction of [0.2, 0.5, 0.8]) {
    // Wait until the backend has answered the given share of the batch, then kill without warning.
    while (fake.counts.size < n * fraction) await new Promise((r) => setTimeout(r, 5));
    s.child.proc.kill("SIGKILL");
    await s.child.exited;
    // Only rows claimed at the kill (sent, answered but not yet committed, or claimed but not sent)
    // can be called again: finished rows are terminal and never claimed twice. SQLite's claims are
    // in memory, journaled in claim_ranges: the pending lines of the entries left were held.
    const db = new Database(join(dir, "sluice.db"), { readonly: true });
    const held = heldAtKill(db);
    db.close();
    expect(held.lines).toBeGreaterThan(0);
    repeatBudget += held.pending;
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
  const text = await (await s.client.files.content(done.output_file_id as string)).text();
  const out = text
    .split("\n")
    .filter(Boolean)
    .map(
      (l) =>
        JSON.parse(l) as { custom_id: string; response: { body: { choices: { message: { content: string } }[] } } },
    );
  expect(out).toHaveLength(n);
  expect(new Set(out.map((o) => o.custom_id)).size).toBe(n);
  for (const [i, o] of out.entries()) {
    expect(o.custom_id).toBe(`c-${i}`);
    expect(o.response.body.choices[0]?.message.content).toBe(
      expectedContent({ messages: [{ content: `crash ${i}` }] }),
    );
  }
  const repeated = fake.calls.length - fake.counts.size;
  expect(repeated).toBeLessThanOrEqual(repeatBudget);
  // The restarts counted an attempt for each held row still pending, and closed every entry.
  const db = new Database(join(dir, "sluice.db"), { readonly: true });
  expect(db.prepare("SELECT count(*) AS n FROM claim_ranges").get()).toEqual({ n: 0 });
  db.close();
  expect(done.usage?.output_tokens).toBe(3 * n);
});
