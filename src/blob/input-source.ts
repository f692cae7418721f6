/**
 * Opens a batch's input: normally a blob in the blob store; or, for batches created with an
 * `s3://bucket/key` input (an extension, allowed only under configured prefixes), the object
 * itself, streamed straight from S3 without a copy.
 */
import type { Readable } from "node:stream";
import type { BlobStore } from "./blob-store.js";
import { DEFAULT_S3_CONNECTION } from "./open-blob-store.js";
import type { S3Connection } from "./s3-blob-store.js";

export const isInputUrl = (key: string) => key.startsWith("s3://");

// Set once by openRuntime from the resolved configuration: the callers of openInput (ingest, the
// files API) hold a blob store, not the configuration, and one process has one S3 connection.
let inputS3: S3Connection = DEFAULT_S3_CONNECTION;

export function setInputS3Connection(connection: S3Connection): void {
  inputS3 = connection;
}

export async function openInput(blobs: BlobStore, key: string, signal?: AbortSignal): Promise<Readable> {
  if (!isInputUrl(key)) return blobs.get(key, signal ? { signal } : {});
  const { openS3Url } = await import("./s3-blob-store.js");
  return openS3Url(key, inputS3, signal ? { signal } : {});
}
