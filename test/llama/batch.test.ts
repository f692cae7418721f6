/**
 * The embedded engine as a batch backend: 200 requests through `sluice run` and through the server
 * with the official SDK, real token usage, an interrupted run resuming, a bad model path.
 */
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeDemoModel } from "../../src/demo-model/demo-model.js";
import { sluice } from "../helpers/cli.js";
import { startSluice, waitForStatus } from "../helpers/server.js";

let dir: string;
let modelPath: string;
const N = 200;

function lines(prefix: string, n = N): string {
  return `${Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      custom_id: `${prefix}-${i}`,
      method: "POST",
      url: "/v1/chat/completions",
      body: { model: "demo", messages: [{ role: "user", content: `question ${i}` }], max_tokens: 4 + (i % 5), seed: i },
    }),
  ).join("\n")}\n`;
}

type Out = {
  custom_id: string;
  response: {
    status_code: number;
    body: { usage: { prompt_tokens: number; completion_tokens: number }; choices: { finish_reason: string }[] };
  };
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-llama-batch-"));
  modelPath = await writeDemoModel(join(dir, "demo.gguf"));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe("embedded engine batches", () => {
  it("runs 200 requests through `sluice run` with real token usage", async () => {
    const input = join(dir, "in.jsonl");
    await writeFile(input, lines("run"));
    const out = join(dir, "out.jsonl");
    const c = sluice(["run", input, "-o", out, "--model", modelPath, "--threads", "1", "--work-dir", join(dir, "w1")]);
    expect(await c.exited).toBe(0);
    const got = (await readFile(out, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Out);
    expect(got).toHaveLength(N);
    for (const [i, o] of got.entries()) {
      expect(o.custom_id).toBe(`run-${i}`);
      expect(o.response.status_code).toBe(200);
      const u = o.response.body.usage;
      expect(u.completion_tokens).toBeGreaterThan(0);
      expect(u.completion_tokens).toBeLessThanOrEqual(4 + (i % 5));
      // The chat template wraps the prompt: more tokens than the bytes of "question i" alone is fine,
      // fewer would mean usage is not counted from the real tokenization.
      expect(u.prompt_tokens).toBeGreaterThan(`question ${i}`.length / 4);
    }
  });

  it("runs 200 requests through the server with the official SDK; usage sums into the batch", async () => {
    const s = await startSluice({ execution: { model: modelPath, threads: 1 } });
    try {
      const file = await s.client.files.create({
        file: await toFile(Buffer.from(lines("sdk")), "in.jsonl"),
        purpose: "batch",
      });
      const b = await s.client.batches.create({
        input_file_id: file.id,
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      });
      const done = await waitForStatus(s.client, b.id, ["completed"], 300_000);
      expect(done.request_counts).toEqual({ total: N, completed: N, failed: 0 });
      const text = await (await s.client.files.content(done.output_file_id as string)).text();
      const got = text
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Out);
      const prompt = got.reduce((sum, o) => sum + o.response.body.usage.prompt_tokens, 0);
      const completion = got.reduce((sum, o) => sum + o.response.body.usage.completion_tokens, 0);
      expect(done.usage?.input_tokens).toBe(prompt);
      expect(done.usage?.output_tokens).toBe(completion);
      expect(completion).toBeGreaterThan(N);
    } finally {
      await s.close();
    }
  });

  it("resumes an interrupted run with this backend", async () => {
    const input = join(dir, "resume.jsonl");
    await writeFile(input, lines("res"));
    const out = join(dir, "resume.out.jsonl");
    const args = ["run", input, "-o", out, "--model", modelPath, "--threads", "1", "--work-dir", join(dir, "w2")];
    const first = sluice(args);
    // Stop it once some requests are checkpointed (the work folder's store says so).
    const Database = (await import("better-sqlite3")).default;
    for (;;) {
      await new Promise((r) => setTimeout(r, 200));
      try {
        const db = new Database(join(dir, "w2", "sluice.db"), { readonly: true });
        const row = db.prepare("SELECT count(*) AS n FROM requests WHERE status = 'succeeded'").get() as { n: number };
        db.close();
        if (row.n >= 20) break;
      } catch {
        // not created yet
      }
    }
    first.proc.kill("SIGINT");
    await first.exited;
    const db = new Database(join(dir, "w2", "sluice.db"), { readonly: true });
    const doneBefore = (
      db.prepare("SELECT count(*) AS n FROM requests WHERE status = 'succeeded'").get() as { n: number }
    ).n;
    db.close();
    expect(doneBefore).toBeLessThan(N);
    const second = sluice(args);
    expect(await second.exited).toBe(0);
    expect(second.output()).toContain("Resuming batch");
    const got = (await readFile(out, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Out);
    expect(got.map((o) => o.custom_id)).toEqual(Array.from({ length: N }, (_, i) => `res-${i}`));
  });

  it("refuses a bad model path at start: exit 2, one line naming --model, no output", async () => {
    const input = join(dir, "bad.jsonl");
    await writeFile(input, lines("bad", 3));
    const out = join(dir, "bad.out.jsonl");
    const missing = join(dir, "no-such-model.gguf");
    const work = join(dir, "w3");
    const c = sluice(["run", input, "-o", out, "--model", missing, "--work-dir", work]);
    expect(await c.exited).toBe(2);
    expect(c.output()).toBe(
      `sluice: invalid setting --model: '${missing}' does not exist (accepted: a .gguf path, demo, hf:user/repo[:quant] or an https URL)\n`,
    );
    expect(existsSync(out) || existsSync(work)).toBe(false);
  });
});
