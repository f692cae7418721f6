/**
 * Ingest: upload + validation + ingest of large batch files through a real `sluice serve` child
 * (SQLite store, local blobs), one fresh server per size. Reports lines/s for the upload and for
 * validation + ingest (until the batch is in_progress), and the server's memory: RSS before, the
 * highest RSS sampled during, and VmHWM (peak since start). Memory must stay flat across sizes:
 * the file is streamed to the blob store, then streamed through validation into chunked inserts.
 *
 * The backend is a simulator with one slot and 100 s per token, so the few requests dispatched
 * once the batch is in_progress just wait; the batch is then cancelled.
 *
 * Usage: node --import tsx bench/ingest.ts [--size quick|full|huge]   (huge adds 5M lines, ~1.7 GB)
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { pickSize, round, withScratch } from "./lib/bench-args.js";
import { generateInput } from "./lib/gen-input.js";
import { startServeProcess, startSimProcess, watchMemory } from "./lib/processes.js";
import { printTable, type Row, writeResult } from "./lib/report.js";
import { cancelBatch, createBatch, pollBatch, uploadFile } from "./lib/sluice-api.js";

const preset = pickSize({
  quick: { sizes: [100_000, 300_000] },
  full: { sizes: [100_000, 1_000_000] },
  huge: { sizes: [100_000, 1_000_000, 5_000_000] },
});

const API_KEY = "sk-bench-ingest-0123456789";

await withScratch("ingest", async (dir) => {
  const sim = await startSimProcess({ slots: 1, stepMs: 100_000 });
  const rows: Row[] = [];
  try {
    for (const lines of preset.sizes) {
      const inputPath = join(dir, `input-${lines}.jsonl`);
      await generateInput({ path: inputPath, count: lines, userChars: 200, maxTokens: 16, seed: 11 });
      const bytes = (await stat(inputPath)).size;
      const serve = await startServeProcess({
        dataDir: join(dir, `data-${lines}`),
        backend: `${sim.url}/v1`,
        apiKey: API_KEY,
      });
      try {
        const api = { baseUrl: serve.baseUrl, apiKey: API_KEY };
        const memory = await watchMemory(serve.pid);
        const t0 = performance.now();
        const fileId = await uploadFile(api, inputPath);
        const t1 = performance.now();
        const batch = await createBatch(api, fileId);
        const ready = await pollBatch(api, batch.id, (b) => b.status !== "validating", 100);
        const t2 = performance.now();
        const mem = await memory();
        if (ready.request_counts.total !== lines) {
          throw new Error(`batch ${ready.status} with ${ready.request_counts.total} of ${lines} requests`);
        }
        await cancelBatch(api, batch.id);
        rows.push({
          lines,
          MB: round(bytes / 1e6, 1),
          "upload s": round((t1 - t0) / 1000, 2),
          "upload MB/s": round(bytes / 1e6 / ((t1 - t0) / 1000), 1),
          "validate+ingest s": round((t2 - t1) / 1000, 2),
          "ingest lines/s": Math.round(lines / ((t2 - t1) / 1000)),
          "end-to-end lines/s": Math.round(lines / ((t2 - t0) / 1000)),
          "RSS before MB": round(mem.startKb / 1024, 0),
          "max RSS MB": round(mem.maxSampledKb / 1024, 0),
          "VmHWM MB": round(mem.peakKb / 1024, 0),
        });
      } finally {
        await serve.stop();
      }
    }
  } finally {
    await sim.stop();
  }
  printTable("ingest — upload + validation + ingest through `sluice serve` (SQLite, local blobs)", rows);
  const path = await writeResult("ingest", { size: preset.size, rows });
  process.stdout.write(`→ ${path}\n`);
});
