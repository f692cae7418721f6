/**
 * Opens a batch's input: normally a blob in the blob store; or, for batches created with an
 * `s3://bucket/key` input (an extension, allowed only under configured prefixes), the object
 * itself, streamed straight from S3 without a copy.
 */
import type { Readable } from "node:stream";
import type { BlobStore } from "./blob-store.js";

export const isInputUrl = (key: string) => key.startsWith("s3://");

export async function openInput(blobs: BlobStore, key: string, signal?: AbortSignal): Promise<Readable> {
  if (!isInputUrl(key)) return blobs.get(key, signal ? { signal } : {});
  const [{ openS3Url }, { s3ConnectionFromEnv }] = await Promise.all([
    import("./s3-blob-store.js"),
    import("./open-blob-store.js"),
  ]);
  return openS3Url(key, s3ConnectionFromEnv(), signal ? { signal } : {});
}
