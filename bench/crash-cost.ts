/**
 * Crash cost: a `sluice serve` child runs a batch against the simulator and is killed with
 * SIGKILL at ~30 % and again at ~70 % of the batch, restarted on the same data folder each time,
 * and left to finish. Reports:
 *  - work redone: calls the simulator served more than once (served − distinct requests; every
 *    input line is a distinct body, and an abandoned call is not "served"), i.e. results that were
 *    computed but died before their group commit;
 *  - the in-flight window at each kill (the simulator's running + queued): calls lost half-done,
 *    re-sent after the restart;
 *  - the recovery time: the first progress after each restart (SQLite's claims are in memory, so the
 *    new process claims the dead one's rows at once; with PostgreSQL's leases, a dead worker's rows
 *    wait for `--lease-ms`);
 *  - that the output holds every custom_id exactly once.
 *
 * Usage: node --import tsx bench/crash-cost.ts [--size quick|full]
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { type ServeProcess, startServeProcess, startSimProcess } from "./lib/processes.js";
import { printTable, type Row, writeResult } from "./lib/report.js";
import { type ApiTarget, type BatchView, createBatch, downloadFile, pollBatch, uploadFile } from "./lib/sluice-api.js";

const preset = pickSize({
  quick: { requests: 1500, slots: 16, leaseMs: 2000 },
  full: { requests: 10_000, slots: 32, leaseMs: 5000 },
});
const API_KEY = "sk-bench-crash-0123456789";
const KILL_AT = [0.3, 0.7];

const done = (b: BatchView) => b.request_counts.completed + b.request_counts.failed;

await withScratch("crash", async (dir) => {
  const inputPath = join(dir, "input.jsonl");
  await generateInput({ path: inputPath, count: preset.requests, userChars: 200, seed: 13 });
  const sim = await startSimProcess({ slots: preset.slots, stepMs: 2, minOut: 10, maxOut: 40, seed: 13 });
  const dataDir = join(dir, "data");
  const start = () =>
    startServeProcess({
      dataDir,
      backend: `${sim.url}/v1`,
      apiKey: API_KEY,
      extraArgs: ["--lease-ms", String(preset.leaseMs)],
    });
  let serve: ServeProcess | undefined = await start();
  const kills: Row[] = [];
  try {
    const api = (): ApiTarget => ({ baseUrl: (serve as ServeProcess).baseUrl, apiKey: API_KEY });
    const batch = await createBatch(api(), await uploadFile(api(), inputPath));
    const t0 = performance.now();
    for (const fraction of KILL_AT) {
      const before = await pollBatch(api(), batch.id, (b) => done(b) >= fraction * preset.requests, 20);
      const simNow = await sim.stats();
      await serve.stop("SIGKILL");
      const killedAt = performance.now();
      serve = await start();
      const restartedMs = performance.now() - killedAt;
      // The first progress after the restart (the rows the dead process held are claimed again).
      const resumed = await pollBatch(api(), batch.id, (b) => b.status !== "in_progress" || done(b) > done(before), 20);
      kills.push({
        "killed at": `${Math.round((done(before) / preset.requests) * 100)} %`,
        "done at kill": done(before),
        "in flight at kill": simNow.running + simNow.queued,
        "restart s": round(restartedMs / 1000, 2),
        "first progress after kill s": round((performance.now() - killedAt) / 1000, 2),
        "status after": resumed.status,
      });
    }
    const final = await pollBatch(api(), batch.id, (b) =>
      ["completed", "failed", "cancelled", "expired"].includes(b.status),
    );
    const elapsed = performance.now() - t0;
    if (final.output_file_id === null) throw new Error(`batch ended ${final.status} without an output file`);
    const outputPath = join(dir, "output.jsonl");
    await downloadFile(api(), final.output_file_id, outputPath);
    const ids = (await readFile(outputPath, "utf8"))
      .split("\n")
      .filter((l) => l.length > 0)
      .map((l) => (JSON.parse(l) as { custom_id: string }).custom_id);
    const distinct = new Set(ids);
    const expected = Array.from({ length: preset.requests }, (_, j) => `req-${j}`);
    const missing = expected.filter((id) => !distinct.has(id)).length;
    const stats = await sim.stats();
    const duplicates = stats.requestsServed - preset.requests;
    const inFlightTotal = kills.reduce((a, k) => a + (k["in flight at kill"] as number), 0);

    printTable(
      `crash cost — ${preset.requests} requests, kill -9 at 30 % and 70 %, --lease-ms ${preset.leaseMs}`,
      kills,
    );
    const summary: Row[] = [
      {
        status: final.status,
        "output lines": ids.length,
        "distinct custom_ids": distinct.size,
        missing,
        "exactly once": ids.length === preset.requests && distinct.size === preset.requests && missing === 0,
        "sim served": stats.requestsServed,
        "redone (served twice)": duplicates,
        "in flight at kills (Σ)": inFlightTotal,
        "redone / in flight": round(duplicates / Math.max(1, inFlightTotal)),
        "total s": round(elapsed / 1000, 1),
      },
    ];
    printTable("outcome", summary);
    const path = await writeResult("crash-cost", {
      size: preset.size,
      requests: preset.requests,
      simulatorSlots: preset.slots,
      leaseMs: preset.leaseMs,
      kills,
      summary: summary[0],
    });
    process.stdout.write(`→ ${path}\n`);
  } finally {
    await serve?.stop("SIGKILL");
    await sim.stop();
  }
});
