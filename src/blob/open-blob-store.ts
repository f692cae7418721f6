/**
 * Chooses the blob adapter from one setting: `s3://bucket/prefix` → S3, anything else → a local
 * folder (default `<dataDir>/blobs`). S3 connection details come from the standard variables:
 * SLUICE_S3_ENDPOINT (custom endpoint; enables path-style unless SLUICE_S3_FORCE_PATH_STYLE=false),
 * AWS_REGION (default us-east-1), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
 * (else the AWS SDK's default credential chain).
 */
import { join } from "node:path";
import type { BlobStore } from "./blob-store.js";
import { LocalBlobStore } from "./local-blob-store.js";
import type { S3Connection } from "./s3-blob-store.js";

export type BlobEnv = Readonly<Record<string, string | undefined>>;

export async function openBlobStore(
  spec: string | undefined,
  dataDir: string,
  env: BlobEnv = process.env,
): Promise<BlobStore> {
  if (spec?.startsWith("s3://")) {
    // Loaded only when used: the AWS SDK adds ~25 MB to every process that imports it.
    const { S3BlobStore } = await import("./s3-blob-store.js");
    const [bucket = "", ...prefix] = spec.slice("s3://".length).split("/");
    return new S3BlobStore({ ...s3ConnectionFromEnv(env), bucket, prefix: prefix.filter((p) => p !== "").join("/") });
  }
  // Opening sweeps the temporary files of writes a crash interrupted.
  return LocalBlobStore.open(spec === undefined || spec === "" ? join(dataDir, "blobs") : spec);
}

export function s3ConnectionFromEnv(env: BlobEnv = process.env): S3Connection {
  const endpoint = env["SLUICE_S3_ENDPOINT"] || undefined;
  const accessKeyId = env["AWS_ACCESS_KEY_ID"];
  const secretAccessKey = env["AWS_SECRET_ACCESS_KEY"];
  const sessionToken = env["AWS_SESSION_TOKEN"] || undefined;
  return {
    region: env["AWS_REGION"] || env["AWS_DEFAULT_REGION"] || "us-east-1",
    endpoint,
    forcePathStyle: endpoint !== undefined && env["SLUICE_S3_FORCE_PATH_STYLE"] !== "false",
    credentials:
      accessKeyId && secretAccessKey
        ? { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) }
        : undefined,
  };
}
