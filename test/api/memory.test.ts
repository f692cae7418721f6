/**
 * Bounded memory: uploading and ingesting a 1M-line file keeps the server's RSS under ~250 MB.
 * Measures the server process (a child), never the time it takes.
 */

import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { api, uploadFile } from "../../src/cli/http-client.js";
import { type Child, rssOf, sluice } from "../helpers/cli.js";
import { type FakeBackend, startFakeBackend } from "../helpers/fake-backend.js";

const KEY = "sk-memory-test-key";
const LINES = 1_000_000;
let dir: string;
let child: Child | undefined;
let fake: FakeBackend | undefined;

afterAll(async () => {
  child?.proc.kill("SIGKILL");
  await fake?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it("uploads and ingests 1M lines with the server's RSS under 250 MB", async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-mem-"));
  const input = join(dir, "big.jsonl");
  const out = createWriteStream(input);
  for (let i = 0; i < LINES; i++) {
    const line = `{"custom_id":"r${i}","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"item ${i}"}]}}\n`;
    if (!out.write(line)) await once(out, "drain");
  }
  out.end();
  await once(out, "finish");
  const bytes = (await stat(input)).size;

  // The backend never answers: this test is about upload and ingest, not execution.
  fake = await startFakeBackend(() => ({ kind: "hang" }));
  child = sluice(["serve", "--port", "0", "--data", join(dir, "data"), "--backend", fake.url], { SLUICE_API_KEY: KEY });
  const [, url] = (await child.waitFor(/listening on (\S+)/)) as RegExpMatchArray;
  const pid = child.proc.pid as number;
  let peak = await rssOf(pid);
  const sampler = setInterval(() => {
    void rssOf(pid).then(
      (r) => {
        peak = Math.max(peak, r);
      },
      () => {},
    );
  }, 50);
  try {
    const c = { baseUrl: url as string, apiKey: KEY };
    const file = await uploadFile(c, input);
    const batch = await api<{ id: string }>(c, "POST", "/batches", {
      input_file_id: file.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    let status = "validating";
    let total = 0;
    while (status === "validating") {
      await new Promise((r) => setTimeout(r, 200));
      const b = await api<{ status: string; request_counts: { total: number } }>(c, "GET", `/batches/${batch.id}`);
      status = b.status;
      total = b.request_counts.total;
    }
    expect(status).toBe("in_progress");
    expect(total).toBe(LINES);
  } finally {
    clearInterval(sampler);
  }
  console.info(`1M-line file: ${(bytes / 1e6).toFixed(0)} MB, server peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
  expect(peak).toBeLessThan(250 * 2 ** 20);
}, 600_000);
