/**
 * The narrow streaming interface every blob adapter implements (local filesystem, S3) and that
 * the encryption layer wraps. Bodies are streams end to end: nothing is held whole in memory.
 */
import type { Readable } from "node:stream";

export interface PutResult {
  /** Plaintext bytes written. */
  bytes: number;
}

export interface BlobStore {
  /** Store `body` under `key`, atomically: a reader sees the whole blob or none. */
  put(key: string, body: Readable, options?: { signal?: AbortSignal }): Promise<PutResult>;
  /** Stream a blob; rejects with a `blob_not_found` SluiceError when missing. */
  get(key: string, options?: { signal?: AbortSignal }): Promise<Readable>;
  /** Remove a blob; missing blobs are not an error. */
  delete(key: string): Promise<void>;
  close?(): Promise<void>;
}
