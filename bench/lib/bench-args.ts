/** Command-line plumbing shared by the benchmark scripts: the size preset and a scratch folder. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Picks a size preset from `--size NAME` (or env SLUICE_BENCH_SIZE); default `quick`, the size
 * `npm run bench` uses. Unknown names fail with the list of known ones.
 */
export function pickSize<T>(presets: Record<string, T>, argv: readonly string[] = process.argv): { size: string } & T {
  const i = argv.indexOf("--size");
  const size = (i >= 0 ? argv[i + 1] : undefined) ?? process.env["SLUICE_BENCH_SIZE"] ?? "quick";
  const preset = presets[size];
  if (preset === undefined) throw new Error(`unknown --size '${size}'; use one of: ${Object.keys(presets).join(", ")}`);
  return { size, ...preset };
}

/** Runs `body` with a fresh temporary folder, removed afterwards. */
export async function withScratch<T>(name: string, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), `sluice-bench-${name}-`));
  try {
    return await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Rounds to `digits` decimals for JSON results and tables. */
export const round = (v: number, digits = 3): number => Number(v.toFixed(digits));
