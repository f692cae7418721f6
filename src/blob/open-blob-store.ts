/**
 * Chooses the blob adapter from one setting: `s3://bucket/prefix` → S3, anything else → a local
 * folder (default `<dataDir>/blobs`). The S3 connection is resolved from the environment by the
 * configuration (src/config/storage.ts).
 */
import { join } from "node:path";
import type { BlobStore } from "./blob-store.js";
import { LocalBlobStore } from "./local-blob-store.js";
import type { S3Connection } from "./s3-blob-store.js";

/** No endpoint, no explicit credentials: AWS itself, with the SDK's default credential chain. */
export const DEFAULT_S3_CONNECTION: S3Connection = {
  region: "us-east-1",
  endpoint: undefined,
  forcePathStyle: false,
  credentials: undefined,
};

export async function openBlobStore(
  spec: string | undefined,
  dataDir: string,
  s3: S3Connection = DEFAULT_S3_CONNECTION,
): Promise<BlobStore> {
  if (spec?.startsWith("s3://")) {
    // Loaded only when used: the AWS SDK adds ~25 MB to every process that imports it.
    const { S3BlobStore } = await import("./s3-blob-store.js");
    const [bucket = "", ...prefix] = spec.slice("s3://".length).split("/");
    return new S3BlobStore({ ...s3, bucket, prefix: prefix.filter((p) => p !== "").join("/") });
  }
  // Opening sweeps the temporary files of writes a crash interrupted.
  return LocalBlobStore.open(spec === undefined || spec === "" ? join(dataDir, "blobs") : spec);
}
