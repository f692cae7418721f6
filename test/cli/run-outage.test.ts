/**
 * `sluice run` against an engine that is not there yet: it warns at start, says it is waiting in
 * its progress lines (not a terminal here), and when the engine comes up it finishes with every
 * line answered and exit 0 — one attempt per line, so no refused connection spent one.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type RunningSimulator, startSimulator } from "../../src/sim/index.js";
import { sluice } from "../helpers/cli.js";
import { freePort } from "../helpers/ports.js";
import { chatLine } from "../helpers/server.js";

let dir: string | undefined;
let sim: RunningSimulator | undefined;
afterAll(async () => {
  await sim?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("sluice run while the engine is away", () => {
  it("waits for the engine, then answers every line", async () => {
    dir = await mkdtemp(join(tmpdir(), "sluice-run-outage-"));
    const input = join(dir, "in.jsonl");
    const output = join(dir, "out.jsonl");
    const n = 40;
    await writeFile(
      input,
      `${Array.from({ length: n }, (_, i) => chatLine(`r-${i}`, `hello ${i}`, "sluice-sim", { max_tokens: 4 })).join("\n")}\n`,
    );
    const port = await freePort();
    const run = sluice(
      [
        "run",
        input,
        "-o",
        output,
        "--backend",
        `http://127.0.0.1:${port}/v1`,
        "--max-attempts",
        "1",
        "--work-dir",
        join(dir, "work"),
      ],
      {},
    );
    await run.waitFor(/is not reachable \(ECONNREFUSED\)/, 30_000);
    await run.waitFor(/No engine for this batch's model answers/, 30_000);
    await run.waitFor(/waiting for engine \(\d+s\): 0\/40 done, 0 failed/, 30_000);
    sim = await startSimulator({ port, slots: 8, stepMs: 1, prefillMsPerToken: 0, model: "sluice-sim" });
    expect(await run.exited).toBe(0);
    const lines = (await readFile(output, "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { custom_id: string; response: { status_code: number } | null });
    expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: n }, (_, i) => `r-${i}`));
    expect(lines.every((l) => l.response?.status_code === 200)).toBe(true);
  }, 120_000);
});
