/**
 * `sluice run`'s work folder on disk: where it is, how big it is, and the two ways it goes away
 * (`--fresh` empties it under the run's lock; a run whose every line succeeded removes it).
 */
import { createHash } from "node:crypto";
import { readdir, rm, rmdir, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";

/** The folder of runs without `--work-dir`, relative to the current directory. */
export const DEFAULT_WORK_ROOT = ".sluice-run";

/** Files of the folder lock (store/folder-lock.ts): kept by `--fresh`, which runs while holding it. */
const LOCK_FILES = new Set(["sluice.lock", "sluice.lock.pid"]);

export interface WorkFolder {
  path: string;
  /** True for `.sluice-run/<hash>`: its parent is removed too once empty. */
  isDefault: boolean;
}

/** `--work-dir`, or `.sluice-run/<hash of the input and output paths>` (the same command, the same folder). */
export function workFolderFor(input: string, output: string, workDir: string | undefined): WorkFolder {
  if (workDir !== undefined) return { path: resolve(workDir), isDefault: false };
  const hash = createHash("sha256").update(`${input}\0${output}`).digest("hex").slice(0, 16);
  return { path: resolve(DEFAULT_WORK_ROOT, hash), isDefault: true };
}

/** Bytes of every file under `dir` (0 when it does not exist). */
export async function folderBytes(dir: string): Promise<number> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  let total = 0;
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) total += await folderBytes(path);
    else if (e.isFile()) total += (await stat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** Deletes the folder's run state (store, blobs, run.json), keeping the lock that the caller holds. */
export async function emptyWorkFolder(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!LOCK_FILES.has(name)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** Removes the folder (its lock released first), and `.sluice-run` itself when nothing else is in it. */
export async function removeWorkFolder(folder: WorkFolder): Promise<void> {
  await rm(folder.path, { recursive: true, force: true });
  // Another run's folder may be beside it: then the parent stays.
  if (folder.isDefault) await rmdir(dirname(folder.path)).catch(() => {});
}
