/**
 * Where data lives: the data folder, the store (PostgreSQL or SQLite), the blob store (a folder or
 * `s3://bucket/prefix`) and the S3 connection (also used for `s3://` batch inputs).
 */
import { join, resolve } from "node:path";
import { z } from "zod";
import type { S3Connection } from "../blob/s3-blob-store.js";
import type { StoreLocation } from "../store/store.js";
import { boolean, type Env, fromEnv, httpUrl, pick, read, type Setting, text } from "./setting.js";

const storeUrl: Setting<string> = {
  accepted: "postgres://… or postgresql://… or sqlite:PATH",
  secret: "url",
  schema: z
    .string()
    .trim()
    .refine((v) => /^postgres(ql)?:\/\/./.test(v) || /^sqlite:./.test(v), "is not a store URL"),
};

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const blobSpec: Setting<string> = {
  accepted: "a folder, or s3://bucket/prefix",
  schema: z
    .string()
    .refine((v) => !v.startsWith("s3://") || BUCKET.test(v.slice(5).split("/")[0] ?? ""), "names no valid bucket")
    .refine((v) => !/[\0\n\r]/.test(v), "holds control characters"),
};

export function resolveStoreLocation(flag: string | undefined, env: Env, dataDir: string): StoreLocation {
  const url = read(pick({ name: "--store", value: flag }, env, "SLUICE_DATABASE_URL"), storeUrl);
  if (url === undefined) return { kind: "sqlite", path: join(dataDir, "sluice.db") };
  if (url.startsWith("sqlite:")) return { kind: "sqlite", path: resolve(url.slice("sqlite:".length)) };
  return { kind: "postgres", url };
}

export function resolveDataDir(flag: string | undefined, env: Env): string {
  return resolve(read(pick({ name: "--data", value: flag }, env, "SLUICE_DATA"), text("a folder")) ?? "./sluice-data");
}

export function resolveBlobs(flag: string | undefined, env: Env): string | undefined {
  return read(pick({ name: "--blobs", value: flag }, env, "SLUICE_BLOBS"), blobSpec);
}

/**
 * SLUICE_S3_ENDPOINT (custom endpoint; path-style unless SLUICE_S3_FORCE_PATH_STYLE=false),
 * AWS_REGION / AWS_DEFAULT_REGION (default us-east-1), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN (else the AWS SDK's default credential chain).
 */
export function resolveS3(env: Env = process.env): S3Connection {
  const endpoint = fromEnv(env, "SLUICE_S3_ENDPOINT", httpUrl("url"));
  const region =
    fromEnv(env, "AWS_REGION", text("a region name, e.g. eu-west-3")) ??
    fromEnv(env, "AWS_DEFAULT_REGION", text("a region name, e.g. eu-west-3")) ??
    "us-east-1";
  const accessKeyId = fromEnv(env, "AWS_ACCESS_KEY_ID", text("an access key id", "always"));
  const secretAccessKey = fromEnv(env, "AWS_SECRET_ACCESS_KEY", text("a secret access key", "always"));
  const sessionToken = fromEnv(env, "AWS_SESSION_TOKEN", text("a session token", "always"));
  const pathStyle = fromEnv(env, "SLUICE_S3_FORCE_PATH_STYLE", boolean);
  return {
    region,
    endpoint,
    forcePathStyle: endpoint !== undefined && pathStyle !== false,
    credentials:
      accessKeyId && secretAccessKey
        ? { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) }
        : undefined,
  };
}
