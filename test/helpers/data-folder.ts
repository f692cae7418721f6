/** Searching a data folder's files (SQLite db, -wal, -shm, blobs) for bytes that must not be there. */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** `file: needle` for every file under `dir` that holds a needle (raw bytes; strings as UTF-8). */
export async function hitsUnder(dir: string, needles: readonly (string | Buffer)[]): Promise<string[]> {
  const found: string[] = [];
  for (const f of await filesUnder(dir)) {
    const bytes = await readFile(f);
    needles.forEach((n, i) => {
      if (bytes.includes(n)) found.push(`${f.slice(dir.length)}: needle ${i}`);
    });
  }
  return found;
}
