/**
 * The least a client can do per request: a keep-alive undici Pool, bodies already in memory, a
 * fixed number of loops each sending the next body and reading the answer to the end. No retries,
 * no output: the floor against which Sluice's per-request overhead is measured.
 */
import { readFile } from "node:fs/promises";
import { Pool } from "undici";

export interface BareRequest {
  path: string;
  body: string;
}

/** Batch-input lines → (path, body) pairs, kept in memory. */
export async function loadRequests(inputPath: string): Promise<BareRequest[]> {
  const text = await readFile(inputPath, "utf8");
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => {
      const line = JSON.parse(l) as { url: string; body: unknown };
      return { path: line.url, body: JSON.stringify(line.body) };
    });
}

export interface BareLoopResult {
  requests: number;
  non2xx: number;
  elapsedMs: number;
  cpuMicros: number;
}

/** Sends every request once over `concurrency` loops; `origin` is http://host:port. */
export async function runBareLoop(
  origin: string,
  requests: readonly BareRequest[],
  concurrency: number,
): Promise<BareLoopResult> {
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
  const headers = { "content-type": "application/json" };
  let next = 0;
  let non2xx = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let i = next++; i < requests.length; i = next++) {
          const r = requests[i] as BareRequest;
          const res = await pool.request({ path: r.path, method: "POST", headers, body: r.body });
          await res.body.text();
          if (res.statusCode >= 300) non2xx++;
        }
      }),
    );
  } finally {
    await pool.close();
  }
  const used = process.cpuUsage(cpu);
  return {
    requests: requests.length,
    non2xx,
    elapsedMs: performance.now() - started,
    cpuMicros: used.user + used.system,
  };
}
