/** Benchmark reporting: an aligned text table for the terminal and a JSON file per benchmark. */
import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export type Cell = string | number | boolean | null | undefined;
export type Row = Record<string, Cell>;

/** bench/results/, next to this folder. */
export const RESULTS_DIR = fileURLToPath(new URL("../results/", import.meta.url));

function formatCell(v: Cell): string {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toFixed(Math.abs(v) >= 100 ? 0 : 2);
  }
  return String(v);
}

/** Renders rows as an aligned table; numbers are right-aligned. Columns default to the union of keys. */
export function formatTable(rows: readonly Row[], columns?: readonly string[]): string {
  const cols = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cells = rows.map((r) => cols.map((c) => formatCell(r[c])));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] as string).length)));
  const numeric = cols.map((c) => rows.some((r) => typeof r[c] === "number"));
  const line = (values: readonly string[]) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i] as number) : v.padEnd(widths[i] as number)))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  return [line(cols), rule, ...cells.map(line)].join("\n");
}

/** Prints a titled table to stdout. */
export function printTable(title: string, rows: readonly Row[], columns?: readonly string[]): void {
  process.stdout.write(`\n${title}\n${formatTable(rows, columns)}\n`);
}

/** Writes `<dir>/<name>.json` with the data and the machine it ran on; returns the path. */
export async function writeResult(name: string, data: unknown, dir: string = RESULTS_DIR): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`invalid result name '${name}'`);
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  const machine = { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length };
  const doc = { name, writtenAt: new Date().toISOString(), machine, data };
  await writeFile(path, `${JSON.stringify(doc, null, 2)}\n`);
  return path;
}
