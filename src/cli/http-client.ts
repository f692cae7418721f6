/** A minimal client for a running Sluice server (SLUICE_BASE_URL, SLUICE_API_KEY: src/config/server.ts). */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { Readable } from "node:stream";
import type { ClientOptions } from "../config/server.js";
import { SluiceError } from "../errors.js";

export type { ClientOptions };

/**
 * `fetch`, with a failure to connect said in words a newcomer can act on: which URL, why, and how
 * to point the client elsewhere.
 */
async function send(c: ClientOptions, path: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(`${c.baseUrl}${path}`, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new SluiceError(
      "server_unreachable",
      `cannot reach Sluice at ${c.baseUrl} (${why}): is \`sluice serve\` running? set SLUICE_BASE_URL or pass --base-url`,
    );
  }
}

async function check(res: Response): Promise<Response> {
  if (res.ok) return res;
  const text = await res.text();
  let message = text;
  try {
    message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
  } catch {}
  throw new SluiceError("http_error", `HTTP ${res.status}: ${message}`);
}

export async function api<T>(c: ClientOptions, method: string, path: string, body?: unknown): Promise<T> {
  const res = await send(c, path, {
    method,
    headers: {
      authorization: `Bearer ${c.apiKey}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return (await (await check(res)).json()) as T;
}

/** Streams a file as multipart/form-data without reading it into memory. */
export async function uploadFile(c: ClientOptions, path: string, purpose = "batch"): Promise<{ id: string }> {
  const size = await stat(path).then(
    (st) => st.size,
    () => {
      throw new SluiceError("file_not_found", `input file not found: ${path}`);
    },
  );
  const boundary = `----sluice${Math.random().toString(16).slice(2)}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n${purpose}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${basename(path).replace(/"/g, "")}"\r\n` +
      "Content-Type: application/jsonl\r\n\r\n",
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  async function* body() {
    yield head;
    yield* createReadStream(path);
    yield tail;
  }
  const res = await send(c, "/files", {
    method: "POST",
    headers: {
      authorization: `Bearer ${c.apiKey}`,
      "content-type": `multipart/form-data; boundary=${boundary}`,
      "content-length": String(head.length + size + tail.length),
    },
    body: Readable.toWeb(Readable.from(body())) as ReadableStream,
    duplex: "half",
  } as RequestInit);
  return (await (await check(res)).json()) as { id: string };
}

export async function download(c: ClientOptions, path: string): Promise<Readable> {
  const res = await check(await send(c, path, { headers: { authorization: `Bearer ${c.apiKey}` } }));
  if (res.body === null) return Readable.from([]);
  return Readable.fromWeb(res.body as import("node:stream/web").ReadableStream);
}
