import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateInput } from "../../bench/lib/gen-input.js";
import { runPlainClient } from "../../bench/lib/plain-client.js";
import { formatTable, writeResult } from "../../bench/lib/report.js";
import { startSimulator } from "../../src/sim/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-sim-bench-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const readLines = async (path: string) =>
  (await readFile(path, "utf8"))
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("gen-input", () => {
  it("writes the same requests sorted or shuffled, grouped by shared system prompt", async () => {
    const common = { count: 50, systemPrompts: 5, systemPromptChars: 300, userChars: 40, maxTokens: 4 };
    await generateInput({ ...common, path: join(dir, "sorted.jsonl") });
    await generateInput({ ...common, path: join(dir, "shuffled.jsonl"), shuffle: true });
    const sorted = await readLines(join(dir, "sorted.jsonl"));
    const shuffled = await readLines(join(dir, "shuffled.jsonl"));
    expect(sorted).toHaveLength(50);
    expect(sorted[0]).toMatchObject({ custom_id: "req-0", method: "POST", url: "/v1/chat/completions" });
    const key = (l: Record<string, unknown>) => JSON.stringify(l);
    expect(shuffled.map(key).sort()).toEqual(sorted.map(key).sort());
    expect(shuffled.map(key)).not.toEqual(sorted.map(key));
    const system = (l: Record<string, unknown>) =>
      ((l["body"] as { messages: { content: string }[] }).messages[0] as { content: string }).content;
    expect(new Set(sorted.map(system)).size).toBe(5);
    expect(system(sorted[0] as Record<string, unknown>)).toBe(system(sorted[9] as Record<string, unknown>));
    expect(system(sorted[0] as Record<string, unknown>)).toHaveLength(300);
  });
});

describe("plain client", () => {
  it("gets every request through injected 500s, 429s, resets and hangs, writing batch-output lines", async () => {
    const sim = await startSimulator({
      zeroCost: true,
      faults: { error500: 0.05, error429: 0.05, reset: 0.05, hang: 0.02, retryAfterMs: 5 },
    });
    try {
      const inputPath = join(dir, "in.jsonl");
      await generateInput({ path: inputPath, count: 200, systemPrompts: 4, systemPromptChars: 400, maxTokens: 3 });
      const run = async (name: string) => {
        const outputPath = join(dir, name);
        const result = await runPlainClient({
          inputPath,
          outputPath,
          baseUrl: `${sim.url}/v1`,
          concurrency: 16,
          maxAttempts: 12,
          timeoutMs: 1_000,
          baseDelayMs: 5,
          maxDelayMs: 50,
        });
        return { result, lines: await readLines(outputPath) };
      };
      const { result, lines } = await run("out.jsonl");
      expect(result).toMatchObject({ requests: 200, failed: 0 });
      expect(result.cpuMicros).toBeGreaterThan(0);
      expect(lines).toHaveLength(200);
      expect(new Set(lines.map((l) => l["custom_id"])).size).toBe(200);
      for (const l of lines) {
        expect(l).toMatchObject({ id: expect.stringMatching(/^batch_req_/), error: null });
        expect(l["response"]).toMatchObject({ status_code: 200, request_id: expect.any(String) });
      }
      const stats = sim.stats();
      expect(stats.requestsServed).toBe(200);
      const faults = stats.faults;
      expect(faults.error500 + faults.error429 + faults.reset + faults.hang).toBeGreaterThan(0);

      // Same input, fresh window: identical answers per custom_id.
      sim.reset();
      const again = await run("out2.jsonl");
      const content = (ls: Record<string, unknown>[]) =>
        new Map(
          ls.map((l) => [
            l["custom_id"],
            (l["response"] as { body: { choices: { message: { content: string } }[] } }).body.choices[0]?.message
              .content,
          ]),
        );
      expect(content(again.lines)).toEqual(content(lines));
    } finally {
      await sim.close();
    }
  });
});

describe("report", () => {
  it("aligns tables and writes JSON results", async () => {
    const table = formatTable([
      { client: "plain", rps: 1234.5, failed: 0 },
      { client: "sluice", rps: 99.123, failed: 12 },
    ]);
    const [header, rule, row1, row2] = table.split("\n");
    expect(header).toBe("client    rps  failed");
    expect(rule).toBe("------  -----  ------");
    expect(row1).toBe("plain    1235       0");
    expect(row2).toBe("sluice  99.12      12");
    const path = await writeResult("unit-test", { ok: true }, dir);
    expect(JSON.parse(await readFile(path, "utf8"))).toMatchObject({ name: "unit-test", data: { ok: true } });
  });
});
