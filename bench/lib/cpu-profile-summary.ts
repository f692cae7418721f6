/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by source area
 * (src/<folder>, node_modules/<package>, node internals), so a benchmark can say where time goes.
 *
 * Usage: node --import tsx bench/lib/cpu-profile-summary.ts FILE.cpuprofile [top=25]
 */
import { readFile } from "node:fs/promises";
import { printTable } from "./report.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Groups a script URL into a readable area: src/dispatch, node_modules/kysely, node:internal … */
export function areaOf(url: string): string {
  if (url === "") return "(native / gc / idle)";
  const nm = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (nm) return `node_modules/${nm[1]}`;
  const src = url.match(/\/(src|bench|dist)\/([^/]+)\//);
  if (src) return `${src[1]}/${src[2]}`;
  if (url.startsWith("node:")) return url.split("/").slice(0, 2).join("/");
  return url.replace(/^file:\/\/.*\//, "");
}

export interface ProfileSummary {
  totalMs: number;
  byArea: { area: string; ms: number; share: number }[];
  byFunction: { fn: string; area: string; ms: number; share: number }[];
}

export function summarise(profile: Profile, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const areas = new Map<string, number>();
  const fns = new Map<string, { area: string; us: number }>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (n === undefined) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const area = functionName === "(idle)" ? "(idle)" : areaOf(url);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const key = `${functionName || "(anonymous)"} ${url.split("/").pop() ?? ""}:${lineNumber + 1}`;
    const f = fns.get(key) ?? { area, us: 0 };
    f.us += us;
    fns.set(key, f);
  }
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    totalMs: ms(total),
    byArea: [...areas]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, ms: ms(us), share: Math.round((us / total) * 1000) / 1000 })),
    byFunction: [...fns]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([fn, f]) => ({ fn, area: f.area, ms: ms(f.us), share: Math.round((f.us / total) * 1000) / 1000 })),
  };
}

/**
 * Inclusive time (self + callees) of functions by name, each sample counted once per name even
 * when the function recurses: "how much of the run happened inside `checkpoint`".
 */
export function inclusive(profile: Profile, names: readonly string[]): { fn: string; ms: number; share: number }[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map(names.map((n) => [n, 0]));
  let all = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    all += dt;
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = byId.get(at)?.callFrame.functionName ?? "";
      if (totals.has(name) && !seen.has(name)) {
        seen.add(name);
        totals.set(name, (totals.get(name) ?? 0) + dt);
      }
    }
  });
  return names.map((fn) => ({
    fn,
    ms: Math.round((totals.get(fn) ?? 0) / 100) / 10,
    share: Math.round(((totals.get(fn) ?? 0) / all) * 1000) / 1000,
  }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (file === undefined) throw new Error("usage: cpu-profile-summary.ts FILE.cpuprofile [top] [fn,fn,… inclusive]");
  const profile = JSON.parse(await readFile(file, "utf8")) as Profile;
  const s = summarise(profile, Number(process.argv[3] ?? 25));
  printTable(`self time by area (${s.totalMs} ms sampled)`, s.byArea);
  printTable("self time by function", s.byFunction);
  const names = process.argv[4]?.split(",").filter((n) => n.length > 0);
  if (names !== undefined && names.length > 0) printTable("inclusive time", inclusive(profile, names));
}
