/**
 * Flow control over many engine shapes, in virtual time (bench/lib/engine-model.ts): slot counts
 * 8–256, step time flat or growing with the batch (×1.5, ×2, ×4 at a full batch), and latencies
 * made bimodal by prefix-cache misses (half the requests spend 300 ms in prefill). Each shape runs
 * Sluice's FlowController at defaults (not told the slots) and a fixed limit at the slot count
 * (the best fixed client on these engines: beyond it requests only queue) on the same seeds.
 * Reported: throughput vs the fixed limit (worst and mean over seeds), mean limit and mean queue
 * after the ramp. What the process benchmarks cannot afford: minutes per shape, dozens of shapes.
 *
 * Usage: node --import tsx bench/flow-model.ts [--size quick|full]
 */
import { pickSize, round } from "./lib/bench-args.js";
import { runEngineModel } from "./lib/engine-model.js";
import { printTable, type Row, writeResult } from "./lib/report.js";

const preset = pickSize({
  quick: { untilMs: 60_000, measureFromMs: 20_000, seeds: 3 },
  full: { untilMs: 300_000, measureFromMs: 60_000, seeds: 6 },
});

const rows: Row[] = [];
for (const stepGrowth of [0, 0.5, 1, 3]) {
  for (const slots of [8, 32, 128, 256]) {
    for (const missRate of [0, 0.5]) {
      const ratios: number[] = [];
      const limits: number[] = [];
      const queues: number[] = [];
      for (let s = 1; s <= preset.seeds; s++) {
        const shape = { slots, stepGrowth, missRate, seed: s * 7919, ...preset };
        const adaptive = runEngineModel(shape);
        const fixed = runEngineModel({ ...shape, flow: { initialLimit: slots, minLimit: slots, maxLimit: slots } });
        ratios.push(adaptive.rate / fixed.rate);
        limits.push(adaptive.meanLimit);
        queues.push(adaptive.meanQueue);
      }
      const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
      rows.push({
        slots,
        "step ×": 1 + stepGrowth,
        "cache misses": missRate,
        "worst vs fixed N": round(Math.min(...ratios)),
        "mean vs fixed N": round(mean(ratios)),
        "mean limit": round(mean(limits), 1),
        "mean queue": round(mean(queues), 1),
      });
    }
  }
}

printTable(
  `flow model — ${preset.seeds} seeds × ${preset.untilMs / 1000} s simulated per shape, measured after ${preset.measureFromMs / 1000} s`,
  rows,
);
const worst = Math.min(...rows.map((r) => r["worst vs fixed N"] as number));
const atLeast98 = rows.filter((r) => (r["mean vs fixed N"] as number) >= 0.98).length;
process.stdout.write(`\nworst shape and seed: ${worst}; shapes with mean ≥ 0.98: ${atLeast98} of ${rows.length}\n`);
process.stdout.write(`→ ${await writeResult("flow-model", { size: preset.size, rows, worst, atLeast98 })}\n`);
