/**
 * One process per SQLite data folder. `sluice serve` and `sluice run` hold an exclusive SQLite lock
 * on `<folder>/sluice.lock` for as long as they live: a second process finds it locked and stops
 * with the holder's pid. The lock is SQLite's own (a POSIX lock on the file, taken by an exclusive
 * transaction in `locking_mode = EXCLUSIVE`), so the operating system releases it when the holder
 * dies, kill -9 included: no stale lock to clean up, unlike a pidfile. The pid is written beside it
 * (`sluice.lock.pid`) only to be named in the message; it decides nothing.
 * Other commands on the folder (`sluice keys`, `sluice tenants`) do not take it.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { SluiceError } from "../errors.js";

export interface FolderLock {
  release(): void;
}

/** The lock connections this process holds: referenced here so that none is collected (and closed). */
const held = new Set<Database.Database>();

export function lockDataFolder(folder: string): FolderLock {
  const path = join(folder, "sluice.lock");
  const db = new Database(path);
  try {
    db.pragma("busy_timeout = 0");
    db.pragma("locking_mode = EXCLUSIVE");
    // The first write takes the exclusive lock; in this mode it is kept until the connection closes.
    db.exec("BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS holder (pid INTEGER); COMMIT;");
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code !== "SQLITE_BUSY") throw err;
    let holder = "another process";
    try {
      holder = `process ${readFileSync(`${path}.pid`, "utf8").trim()}`;
    } catch {
      // no pid written yet: the holder is still starting
    }
    throw new SluiceError(
      "folder_in_use",
      `the data folder ${folder} is in use by ${holder} (one sluice serve or sluice run per folder; stop it, or use another --data / --work-dir)`,
    );
  }
  writeFileSync(`${path}.pid`, `${process.pid}\n`);
  held.add(db);
  return {
    release: () => {
      held.delete(db);
      db.close();
    },
  };
}
