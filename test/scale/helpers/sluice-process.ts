/**
 * Runs the built CLI (`node bin/sluice.js …`) as child processes, the way a scaled deployment
 * runs it: one process per role. `ensureBuilt()` rebuilds dist/ when a source file is newer.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = join(ROOT, "bin", "sluice.js");
const BUILT = join(ROOT, "dist", "cli", "main.js");

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, await newestMtime(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, (await stat(path)).mtimeMs);
  }
  return newest;
}

/**
 * Runs `npm run build` when dist/ is missing or older than src/. Type errors do not stop tsc from
 * emitting (the typecheck step reports them); only a missing dist/ afterwards is fatal here.
 */
export async function ensureBuilt(): Promise<void> {
  const built = await stat(BUILT).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  if (built > (await newestMtime(join(ROOT, "src")))) return;
  await promisify(execFile)("npm", ["run", "build"], { cwd: ROOT }).catch(async (err: Error) => {
    const after = await stat(BUILT).catch(() => undefined);
    if (after === undefined) throw err;
  });
}

export interface SluiceProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Everything written to stdout and stderr so far (for failure messages). */
  output(): string;
  /** Resolves with the first match of `pattern` in stdout (already written or still to come). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGKILL: no cleanup at all, like a crashed host or an OOM kill. */
  kill9(): Promise<void>;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnSluice(name: string, args: string[], env: Record<string, string>): SluiceProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let all = "";
  const listeners = new Set<() => void>();
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
    all += d;
    for (const l of listeners) l();
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    all += d;
  });
  const exited = child.exitCode !== null ? Promise.resolve() : once(child, "exit").then(() => {});
  const alive = () => child.exitCode === null && child.signalCode === null;

  return {
    name,
    child,
    output: () => all,
    waitForLine(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(stdout);
          if (m !== null) {
            done();
            resolve(m);
          } else if (!alive()) {
            done();
            reject(new Error(`${name} exited before printing ${pattern}:\n${all}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${all}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off("exit", check);
        };
        listeners.add(check);
        child.on("exit", check);
        check();
      });
    },
    async kill9() {
      if (alive()) child.kill("SIGKILL");
      await exited;
    },
    async stop(graceMs = 20_000) {
      if (!alive()) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** `sluice serve --no-worker` on an ephemeral port; resolves with its `/v1` base URL. */
export async function startApi(common: string[], env: Record<string, string>): Promise<[SluiceProcess, string]> {
  const api = spawnSluice("api", ["serve", "--no-worker", "--port", "0", ...common], env);
  const [, baseURL] = await api.waitForLine(/listening on (\S+\/v1)/);
  return [api, baseURL as string];
}

/**
 * `sluice worker` with `args` (`--backend URL` or `--config FILE` among them); resolves once it
 * has started, with its worker id (the lease owner it writes).
 */
export async function startWorker(
  name: string,
  args: string[],
  env: Record<string, string>,
): Promise<[SluiceProcess, string]> {
  const w = spawnSluice(name, ["worker", ...args], env);
  const [, id] = await w.waitForLine(/Sluice worker (\S+) started/);
  return [w, id as string];
}
