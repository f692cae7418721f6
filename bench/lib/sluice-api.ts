/**
 * The few calls of Sluice's OpenAI-compatible API the benchmarks make against a `sluice serve`
 * child: a streamed upload (the file is never read into memory), batch create / get / cancel,
 * and output download to a file.
 */
import { createWriteStream, openAsBlob } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";

export interface ApiTarget {
  /** http://host:port/v1 */
  baseUrl: string;
  apiKey: string;
}

export interface BatchView {
  id: string;
  status: string;
  output_file_id: string | null;
  error_file_id: string | null;
  request_counts: { total: number; completed: number; failed: number };
}

async function call<T>(t: ApiTarget, method: string, path: string, body?: FormData | object): Promise<T> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${t.apiKey}` } };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...init.headers, "content-type": "application/json" };
  }
  const res = await fetch(t.baseUrl + path, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

/** Uploads a local file as purpose=batch, streamed from disk; returns the file id. */
export async function uploadFile(t: ApiTarget, path: string): Promise<string> {
  const form = new FormData();
  form.append("purpose", "batch");
  form.append("file", await openAsBlob(path), "input.jsonl");
  return (await call<{ id: string }>(t, "POST", "/files", form)).id;
}

export const createBatch = (t: ApiTarget, inputFileId: string) =>
  call<BatchView>(t, "POST", "/batches", {
    input_file_id: inputFileId,
    endpoint: "/v1/chat/completions",
    completion_window: "24h",
  });

export const getBatch = (t: ApiTarget, id: string) => call<BatchView>(t, "GET", `/batches/${id}`);

export const cancelBatch = (t: ApiTarget, id: string) => call<BatchView>(t, "POST", `/batches/${id}/cancel`);

/** Polls the batch every `intervalMs` until `done(batch)` holds; returns that batch view. */
export async function pollBatch(
  t: ApiTarget,
  id: string,
  done: (b: BatchView) => boolean,
  intervalMs = 50,
): Promise<BatchView> {
  for (;;) {
    const b = await getBatch(t, id);
    if (done(b)) return b;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Streams a file's content to a local path. */
export async function downloadFile(t: ApiTarget, fileId: string, path: string): Promise<void> {
  const res = await fetch(`${t.baseUrl}/files/${fileId}/content`, { headers: { authorization: `Bearer ${t.apiKey}` } });
  if (!res.ok || res.body === null) throw new Error(`GET /files/${fileId}/content: HTTP ${res.status}`);
  await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(path));
}
