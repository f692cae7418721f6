/**
 * The baseline a competent user writes by hand instead of using Sluice: stream the batch JSONL,
 * keep a FIXED number of requests in flight over a keep-alive undici Pool, retry 429/5xx/resets
 * with capped, jittered exponential backoff that honours retry-after-ms / retry-after (the same
 * defaults as openai-node), and write OpenAI batch-output lines as results arrive.
 */
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { Pool } from "undici";

export interface PlainClientOptions {
  inputPath: string;
  outputPath: string;
  /** http://host:port or http://host:port/v1 (input lines' urls already start with /v1). */
  baseUrl: string;
  concurrency: number;
  /** Attempts per request, the first included. */
  maxAttempts: number;
  /** Per-attempt timeout; how a hung request is given up on (default 10 min, like openai-node). */
  timeoutMs?: number;
  apiKey?: string;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface PlainClientResult {
  requests: number;
  failed: number;
  elapsedMs: number;
  /** User + system CPU of this whole process during the run (run the server elsewhere to isolate it). */
  cpuMicros: number;
}

interface InputLine {
  custom_id: string;
  method: string;
  url: string;
  body: unknown;
}

type Attempt =
  | { kind: "response"; status: number; requestId: string; body: unknown; retryAfterMs: number | undefined }
  | { kind: "error"; message: string };

export async function runPlainClient(o: PlainClientOptions): Promise<PlainClientResult> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const url = new URL(o.baseUrl);
  const basePath = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  const pool = new Pool(url.origin, { connections: o.concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (o.apiKey !== undefined) headers["authorization"] = `Bearer ${o.apiKey}`;
  const out = createWriteStream(o.outputPath);
  let requests = 0;
  let failed = 0;
  let seq = 0;

  // Writers share one pending "drain" wait instead of each adding a listener.
  let drained: Promise<void> | undefined;
  const write = async (line: unknown) => {
    if (out.write(`${JSON.stringify(line)}\n`)) return;
    drained ??= once(out, "drain").then(() => {
      drained = undefined;
    });
    await drained;
  };

  const attempt = async (line: InputLine): Promise<Attempt> => {
    try {
      const res = await pool.request({
        path: basePath + line.url,
        method: "POST",
        headers,
        body: JSON.stringify(line.body),
        signal: AbortSignal.timeout(o.timeoutMs ?? 600_000),
      });
      const text = await res.body.text();
      const h = (name: string) => {
        const v = res.headers[name];
        return typeof v === "string" ? v : undefined;
      };
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // Keep non-JSON bodies as text.
      }
      return {
        kind: "response",
        status: res.statusCode,
        requestId: h("x-request-id") ?? "",
        body,
        retryAfterMs: retryAfter(h("retry-after-ms"), h("retry-after")),
      };
    } catch (err) {
      return { kind: "error", message: (err as Error).message };
    }
  };

  const handleLine = async (raw: string) => {
    const id = `batch_req_${(seq++).toString(36).padStart(8, "0")}`;
    let line: InputLine;
    try {
      line = JSON.parse(raw) as InputLine;
    } catch {
      failed++;
      await write({ id, custom_id: null, response: null, error: { code: "invalid_json", message: "bad input line" } });
      return;
    }
    for (let n = 1; ; n++) {
      const r = await attempt(line);
      const ok = r.kind === "response" && r.status >= 200 && r.status < 300;
      const retryable = r.kind === "error" || r.status === 429 || r.status === 408 || r.status >= 500;
      if (ok || !retryable || n >= o.maxAttempts) {
        if (!ok) failed++;
        await write(
          r.kind === "response"
            ? {
                id,
                custom_id: line.custom_id,
                response: { status_code: r.status, request_id: r.requestId, body: r.body },
                error: null,
              }
            : { id, custom_id: line.custom_id, response: null, error: { code: "request_failed", message: r.message } },
        );
        return;
      }
      const exp = Math.min(o.maxDelayMs ?? 8_000, (o.baseDelayMs ?? 500) * 2 ** (n - 1));
      const hinted = r.kind === "response" ? r.retryAfterMs : undefined;
      await sleep(hinted !== undefined && hinted <= 60_000 ? hinted : exp * (1 - Math.random() * 0.25));
    }
  };

  // An async generator serializes concurrent next() calls, so N workers can share one reader.
  async function* lines(): AsyncGenerator<string> {
    const rl = createInterface({ input: createReadStream(o.inputPath), crlfDelay: Number.POSITIVE_INFINITY });
    for await (const l of rl) if (l.trim().length > 0) yield l;
  }
  const source = lines();
  const worker = async () => {
    for (;;) {
      const next = await source.next();
      if (next.done) return;
      requests++;
      await handleLine(next.value);
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, worker));
  } finally {
    out.end();
    await once(out, "close");
    await pool.close();
  }
  const used = process.cpuUsage(cpu);
  return { requests, failed, elapsedMs: performance.now() - started, cpuMicros: used.user + used.system };
}

function retryAfter(ms: string | undefined, seconds: string | undefined): number | undefined {
  const fromMs = ms === undefined ? Number.NaN : Number(ms);
  if (Number.isFinite(fromMs) && fromMs >= 0) return fromMs;
  if (seconds === undefined) return undefined;
  const s = Number(seconds);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const date = Date.parse(seconds);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
