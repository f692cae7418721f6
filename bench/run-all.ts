/**
 * Runs the benchmark suite, one script after another, each in its own process (a fresh heap, and
 * no benchmark's leftovers in the next one's measurements). Each prints its tables and writes
 * bench/results/<name>.json. `npm run bench` builds first: the simulator and server children run
 * the built CLI.
 *
 * Usage: node --import tsx bench/run-all.ts [--size quick|full] [names…]
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const SUITE = [
  "flow-model",
  "efficiency",
  "faults",
  "shared-prefixes",
  "pipeline-overhead",
  "ingest",
  "crash-cost",
  "execution-memory",
];

const args = process.argv.slice(2);
const sizeAt = args.indexOf("--size");
const size = sizeAt >= 0 ? (args[sizeAt + 1] ?? "quick") : (process.env["SLUICE_BENCH_SIZE"] ?? "quick");
const named = args.filter((a, i) => !a.startsWith("--") && (sizeAt < 0 || i !== sizeAt + 1));
const chosen = named.length > 0 ? named : SUITE;
for (const name of chosen) if (!SUITE.includes(name)) throw new Error(`unknown benchmark '${name}'`);

const run = (name: string) =>
  new Promise<number>((resolve) => {
    const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", script, "--size", size], { stdio: "inherit" });
    child.once("exit", (code) => resolve(code ?? 1));
  });

const started = performance.now();
const failures: string[] = [];
for (const name of chosen) {
  process.stdout.write(`\n=== ${name} (--size ${size}) ===\n`);
  const t0 = performance.now();
  const code = await run(name);
  process.stdout.write(
    `=== ${name}: ${code === 0 ? "ok" : `FAILED (exit ${code})`} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`,
  );
  if (code !== 0) failures.push(name);
}
process.stdout.write(`\nsuite finished in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
if (failures.length > 0) {
  process.stderr.write(`failed: ${failures.join(", ")}\n`);
  process.exitCode = 1;
}
