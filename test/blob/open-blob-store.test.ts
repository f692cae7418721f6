import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalBlobStore } from "../../src/blob/local-blob-store.js";
import { openBlobStore } from "../../src/blob/open-blob-store.js";
import { openS3Url, parseS3Url, S3BlobStore } from "../../src/blob/s3-blob-store.js";
import { resolveS3 } from "../../src/config/storage.js";
import { SluiceError } from "../../src/errors.js";
import { type S3TestServer, startS3Server } from "../helpers/s3.js";

async function text(stream: Readable): Promise<string> {
  let out = "";
  for await (const chunk of stream) out += (chunk as Buffer).toString();
  return out;
}

describe("openBlobStore", () => {
  let server: S3TestServer;
  let dataDir: string;
  beforeAll(async () => {
    server = await startS3Server("sluice-open");
    dataDir = await mkdtemp(join(tmpdir(), "sluice-data-"));
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("defaults to <dataDir>/blobs", async () => {
    const blobs = await openBlobStore(undefined, dataDir);
    expect(blobs).toBeInstanceOf(LocalBlobStore);
    await blobs.put("t1/a", Readable.from([Buffer.from("hi")]));
    expect(existsSync(join(dataDir, "blobs", "t1", "a"))).toBe(true);
  });

  it("uses a given local folder", async () => {
    const blobs = await openBlobStore(join(dataDir, "elsewhere"), dataDir);
    await blobs.put("k", Readable.from([Buffer.from("hi")]));
    expect(existsSync(join(dataDir, "elsewhere", "k"))).toBe(true);
  });

  it("opens S3 for s3://bucket/prefix, and the object is readable by its s3:// URL", async () => {
    const blobs = await openBlobStore(`s3://${server.bucket}/sluice/blobs/`, dataDir, resolveS3(server.env));
    expect(blobs).toBeInstanceOf(S3BlobStore);
    try {
      await blobs.put("t1/file-x", Readable.from([Buffer.from("line 1\nline 2\n")]));
      const connection = resolveS3(server.env);
      const stream = await openS3Url(`s3://${server.bucket}/sluice/blobs/t1/file-x`, connection);
      expect(await text(stream)).toBe("line 1\nline 2\n");
      await expect(openS3Url(`s3://${server.bucket}/sluice/nope`, connection)).rejects.toMatchObject({
        code: "blob_not_found",
      });
    } finally {
      await blobs.close?.();
    }
  });

  it("resolves the S3 connection from the standard variables", () => {
    expect(resolveS3({})).toEqual({
      region: "us-east-1",
      endpoint: undefined,
      forcePathStyle: false,
      credentials: undefined,
    });
    expect(
      resolveS3({
        SLUICE_S3_ENDPOINT: "http://minio:9000",
        AWS_REGION: "eu-west-3",
        AWS_ACCESS_KEY_ID: "id",
        AWS_SECRET_ACCESS_KEY: "secret",
        AWS_SESSION_TOKEN: "tok",
      }),
    ).toEqual({
      region: "eu-west-3",
      endpoint: "http://minio:9000",
      forcePathStyle: true,
      credentials: { accessKeyId: "id", secretAccessKey: "secret", sessionToken: "tok" },
    });
  });

  it("parses s3:// URLs and rejects others", () => {
    expect(parseS3Url("s3://b/a/b c.jsonl")).toEqual({ bucket: "b", key: "a/b c.jsonl" });
    expect(() => parseS3Url("s3://bucket-only")).toThrow(SluiceError);
    expect(() => parseS3Url("https://x/y")).toThrow(SluiceError);
  });
});
