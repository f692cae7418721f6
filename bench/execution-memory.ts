/**
 * Memory through a whole execution: `sluice run INPUT -o OUTPUT --backend SIM` as a child process
 * on a large batch against the zero-cost simulator, its RSS sampled every 250 ms from ingest to
 * the last output line. Target (execution-engine issue): flat, ≤ 300 MB through 1M requests.
 * Reports the peak and the RSS at each tenth of the run (time-sliced), so a slow leak shows as a
 * rising series rather than hiding under one peak.
 *
 * Usage: node --import tsx bench/execution-memory.ts [--size quick|full]   (quick 100k, full 1M)
 */
import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { CLI, procMemory, REPO_ROOT, startSimProcess } from "./lib/processes.js";
import { printTable, writeResult } from "./lib/report.js";

const preset = pickSize({ quick: { requests: 100_000 }, full: { requests: 1_000_000 } });
const LIMIT_MB = 300;

await withScratch("execution-memory", async (dir) => {
  const inputPath = join(dir, "input.jsonl");
  const outputPath = join(dir, "output.jsonl");
  const gen = await generateInput({ path: inputPath, count: preset.requests, userChars: 200, maxTokens: 16, seed: 9 });
  const sim = await startSimProcess({ zeroCost: true });
  try {
    const started = performance.now();
    const child = spawn(
      process.execPath,
      [CLI, "run", inputPath, "-o", outputPath, "--backend", `${sim.url}/v1`, "--work-dir", join(dir, "work")],
      { cwd: REPO_ROOT, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    const samples: [number, number][] = [];
    const timer = setInterval(() => {
      procMemory(child.pid as number).then(
        // An exited child not yet reaped still has a status file, without VmRSS: skip it.
        (m) => {
          if (Number.isFinite(m.rssKb)) samples.push([performance.now() - started, m.rssKb / 1024]);
        },
        () => {},
      );
    }, 250);
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    clearInterval(timer);
    const seconds = (performance.now() - started) / 1000;
    if (code !== 0) throw new Error(`sluice run exited ${code}:\n${stderr}`);
    let lines = 0;
    for await (const _ of createInterface({ input: createReadStream(outputPath) })) lines++;
    if (lines !== preset.requests) throw new Error(`output has ${lines} lines, expected ${preset.requests}`);
    const peak = samples.reduce((m, [, mb]) => Math.max(m, mb), 0);
    const tenths = Array.from({ length: 10 }, (_, i) => {
      const from = (seconds * 1000 * i) / 10;
      const to = (seconds * 1000 * (i + 1)) / 10;
      const slice = samples.filter(([t]) => t >= from && t < to).map(([, mb]) => mb);
      return slice.length === 0 ? null : round(Math.max(...slice), 0);
    });
    printTable(
      `RSS of \`sluice run\` through ${preset.requests.toLocaleString("en-US")} requests (zero-cost simulator)`,
      [
        {
          requests: preset.requests,
          "input MB": round(gen.bytes / 1e6, 0),
          "output MB": round((await stat(outputPath)).size / 1e6, 0),
          "wall s": round(seconds, 0),
          "req/s (whole run)": round(preset.requests / seconds, 0),
          "peak RSS MB": round(peak, 0),
          [`≤ ${LIMIT_MB} MB`]: peak <= LIMIT_MB ? "yes" : "NO",
        },
      ],
    );
    process.stdout.write(`max RSS per tenth of the run (MB): ${tenths.join(", ")}\n`);
    const path = await writeResult("execution-memory", {
      size: preset.size,
      requests: preset.requests,
      inputBytes: gen.bytes,
      seconds: round(seconds, 1),
      peakRssMb: round(peak, 1),
      rssMbByTenth: tenths,
      limitMb: LIMIT_MB,
    });
    process.stdout.write(`→ ${path}\n`);
  } finally {
    await sim.stop();
  }
});
