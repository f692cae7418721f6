/**
 * Child processes for benchmarks: the simulator (`sluice sim`) and the server (`sluice serve`),
 * each in its own process so that they do not share a CPU core's time with what a benchmark
 * measures in-process. Both run the built CLI (bin/sluice.js → dist/); `npm run bench` builds first.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { SimOptions, SimStats } from "../../src/sim/index.js";

export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CLI = fileURLToPath(new URL("../../bin/sluice.js", import.meta.url));

export interface Child {
  pid: number;
  /** Resolves with the exit code (or the signal's name) once the process ends. */
  exited: Promise<number | string>;
  /** Sends a signal (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Spawns `node bin/sluice.js ARGS` and resolves once a stdout line matches `ready`. */
export async function spawnSluice(
  args: readonly string[],
  ready: RegExp,
  env: NodeJS.ProcessEnv = {},
  nodeArgs: readonly string[] = [],
): Promise<Child & { match: RegExpMatchArray }> {
  if (!existsSync(new URL("../../dist/cli/main.js", import.meta.url))) {
    throw new Error("dist/ is missing: run `npm run build` first (`npm run bench` does)");
  }
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const match = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NonNullable<ChildProcess["stdout"]> });
    rl.on("line", (line) => {
      const m = line.match(ready);
      if (m !== null) resolve(m);
    });
    void exited.then((code) => reject(new Error(`sluice ${args[0]} exited (${code}) before ready:\n${stderr}`)));
  });
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return { pid: child.pid as number, exited, stop, match };
}

export interface SimProcess extends Child {
  url: string;
  stats(): Promise<SimStats>;
  /** New measurement window (cold cache, counters zeroed); returns the fresh stats. */
  reset(): Promise<SimStats>;
}

const FLAGS: [keyof SimOptions, string][] = [
  ["slots", "--slots"],
  ["stepMs", "--step-ms"],
  ["stepGrowth", "--step-growth"],
  ["prefillMsPerToken", "--prefill-ms-per-token"],
  ["blockSize", "--block-size"],
  ["cacheBlocks", "--cache-blocks"],
  ["maxQueue", "--max-queue"],
  ["minOut", "--min-out"],
  ["maxOut", "--max-out"],
  ["maxTokensCap", "--max-tokens-cap"],
  ["seed", "--seed"],
];

/** The fault rates' flags (the 429s' retry-after is not a flag: the simulator's default, 100 ms). */
const FAULT_FLAGS: [keyof NonNullable<SimOptions["faults"]>, string][] = [
  ["error500", "--fault-500"],
  ["error429", "--fault-429"],
  ["reset", "--fault-reset"],
  ["hang", "--fault-hang"],
];

/** Starts `sluice sim` on a free port with these options (faults: their rates only). */
export async function startSimProcess(options: SimOptions = {}): Promise<SimProcess> {
  const args = ["sim", "--port", "0"];
  for (const [key, flag] of FLAGS) {
    const v = options[key];
    if (v !== undefined) args.push(flag, String(v));
  }
  for (const [key, flag] of FAULT_FLAGS) {
    const v = options.faults?.[key];
    if (v !== undefined) args.push(flag, String(v));
  }
  if (options.zeroCost === true) args.push("--zero-cost");
  const child = await spawnSluice(args, /listening on (http:\/\/\S+) /);
  const url = child.match[1] as string;
  const json = async (path: string, method = "GET") => {
    const res = await fetch(url + path, { method });
    if (!res.ok) throw new Error(`simulator ${path}: HTTP ${res.status}`);
    return (await res.json()) as SimStats;
  };
  return { ...child, url, stats: () => json("/stats"), reset: () => json("/stats/reset", "POST") };
}

export interface GaugeSummary {
  samples: number;
  /** Mean of the live `running` and `queued` gauges over the samples. */
  meanRunning: number;
  meanQueued: number;
  /** Fraction of samples with requests waiting in the simulator's queue. */
  queuedShare: number;
  /**
   * Requests served per second between the moments 20 % and 90 % of `total` had been served:
   * the steady state, without the start-up ramp and the end-of-run tail. NaN when too few samples.
   */
  steadyRate: number;
}

interface GaugeSample {
  at: number;
  served: number;
  running: number;
  queued: number;
}

/** Linear interpolation of the moment `served` first reached `target`. */
function momentServed(samples: readonly GaugeSample[], target: number): number {
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1] as GaugeSample;
    const b = samples[i] as GaugeSample;
    if (b.served >= target && b.served > a.served)
      return a.at + ((target - a.served) / (b.served - a.served)) * (b.at - a.at);
  }
  return Number.NaN;
}

/**
 * Polls the simulator's live gauges every `intervalMs` until the returned function is called with
 * the run's request count. Samples start at the first one with work running or queued, so idle
 * start-up is not averaged in.
 */
export function sampleGauges(sim: SimProcess, intervalMs = 50): (total: number) => Promise<GaugeSummary> {
  const seen: GaugeSample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const s = await sim.stats().catch(() => undefined);
      if (s !== undefined && (seen.length > 0 || s.running + s.queued > 0))
        seen.push({ at: performance.now(), served: s.requestsServed, running: s.running, queued: s.queued });
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return async (total: number) => {
    stopped = true;
    await loop;
    const t20 = momentServed(seen, total * 0.2);
    const t90 = momentServed(seen, total * 0.9);
    // Trailing idle samples (after the last completion) are not part of the run either.
    while (seen.length > 0 && (seen.at(-1)?.running ?? 0) + (seen.at(-1)?.queued ?? 0) === 0) seen.pop();
    const n = Math.max(1, seen.length);
    return {
      samples: seen.length,
      meanRunning: seen.reduce((a, s) => a + s.running, 0) / n,
      meanQueued: seen.reduce((a, s) => a + s.queued, 0) / n,
      queuedShare: seen.filter((s) => s.queued > 0).length / n,
      steadyRate: (total * 0.7) / ((t90 - t20) / 1000),
    };
  };
}

export interface ServeProcess extends Child {
  /** http://127.0.0.1:PORT/v1 */
  baseUrl: string;
  apiKey: string;
}

/** Starts `sluice serve --data DIR --port 0 …` with SLUICE_API_KEY set. */
export async function startServeProcess(o: {
  dataDir: string;
  backend: string;
  apiKey: string;
  extraArgs?: readonly string[];
}): Promise<ServeProcess> {
  const args = ["serve", "--data", o.dataDir, "--port", "0", "--backend", o.backend, "--log-level", "warn"];
  const child = await spawnSluice([...args, ...(o.extraArgs ?? [])], /listening on (http:\/\/\S+)\/v1/, {
    SLUICE_API_KEY: o.apiKey,
  });
  return { ...child, baseUrl: `${child.match[1] as string}/v1`, apiKey: o.apiKey };
}

export interface ProcMemory {
  /** Resident set now, KiB. */
  rssKb: number;
  /** Peak resident set since the process started (VmHWM), KiB. */
  peakKb: number;
}

/** Reads a live process's memory from /proc (Linux only). */
export async function procMemory(pid: number): Promise<ProcMemory> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? Number.NaN);
  return { rssKb: kb("VmRSS"), peakKb: kb("VmHWM") };
}

/** User + system CPU a live process has used so far, in µs (Linux /proc; clock ticks of 10 ms). */
export async function procCpuMicros(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which sits in parentheses and may contain spaces.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10_000;
}

export interface MemoryWatch {
  /** RSS when the watch began, KiB. */
  startKb: number;
  /** Highest RSS sampled while watching, KiB. */
  maxSampledKb: number;
  /** VmHWM when the watch stopped: the peak since the process started, KiB. */
  peakKb: number;
}

/** Samples a process's RSS every `intervalMs` until the returned function is called. */
export async function watchMemory(pid: number, intervalMs = 100): Promise<() => Promise<MemoryWatch>> {
  const first = await procMemory(pid);
  let max = first.rssKb;
  const timer = setInterval(() => {
    procMemory(pid).then(
      (m) => {
        max = Math.max(max, m.rssKb);
      },
      () => {},
    );
  }, intervalMs);
  return async () => {
    clearInterval(timer);
    const last = await procMemory(pid);
    return { startKb: first.rssKb, maxSampledKb: Math.max(max, last.rssKb), peakKb: last.peakKb };
  };
}
