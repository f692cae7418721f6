/** One suite for every blob adapter: the local folder, S3 (a real s3rver), and the encryption layer. */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BlobStore } from "../../src/blob/blob-store.js";
import { EncryptedBlobStore } from "../../src/blob/encrypted-blob-store.js";
import { LocalBlobStore } from "../../src/blob/local-blob-store.js";
import { S3BlobStore } from "../../src/blob/s3-blob-store.js";
import { SluiceError } from "../../src/errors.js";
import { startS3Server } from "../helpers/s3.js";

interface BlobKind {
  name: string;
  open(): Promise<{ blobs: BlobStore; dispose(): Promise<void> }>;
}

const KINDS: BlobKind[] = [
  {
    name: "local",
    async open() {
      const dir = await mkdtemp(join(tmpdir(), "sluice-blobs-"));
      return { blobs: new LocalBlobStore(dir), dispose: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    // Every blob keyed by itself: the suite's keys do not follow Sluice's files/… layout.
    name: "encrypted local",
    async open() {
      const dir = await mkdtemp(join(tmpdir(), "sluice-blobs-"));
      const keys = new Map<string, Buffer>();
      const dataKeys = {
        enabled: true,
        get: async (id: string) => keys.get(id) ?? keys.set(id, randomBytes(32)).get(id) ?? null,
        destroy: async (...ids: string[]) => {
          for (const id of ids) keys.delete(id);
        },
      };
      const blobs = new EncryptedBlobStore(new LocalBlobStore(dir), dataKeys, (key) => key);
      return { blobs, dispose: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: "s3",
    async open() {
      const server = await startS3Server();
      const blobs = new S3BlobStore({ ...server.connection, bucket: server.bucket, prefix: "tenants" });
      return {
        blobs,
        async dispose() {
          await blobs.close();
          await server.stop();
        },
      };
    },
  },
];

const MiB = 1024 * 1024;

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** `total` bytes of a repeating pattern, produced lazily in 256 KiB chunks. */
function patterned(total: number): Readable {
  const block = Buffer.alloc(256 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(block.length, total - sent);
      sent += n;
      this.push(Buffer.from(block.subarray(0, n)));
    },
  });
}

/** Resolves once the adapter has started reading `body` (its buffer is drained). */
async function consumed(body: PassThrough): Promise<void> {
  while (body.readableLength > 0) await new Promise((r) => setTimeout(r, 5));
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SluiceError);
  expect((err as SluiceError).code).toBe(code);
}

describe.each(KINDS)("$name blob store", (kind) => {
  let blobs: BlobStore;
  let dispose: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ blobs, dispose } = await kind.open());
  });
  afterAll(async () => {
    await dispose?.();
  });

  it("round-trips a blob", async () => {
    const body = Buffer.from('{"a":1}\n{"b":"é"}\n');
    const res = await blobs.put("t1/file-a", Readable.from([body]));
    expect(res).toEqual({ bytes: body.length });
    expect(await readAll(await blobs.get("t1/file-a"))).toEqual(body);
  });

  it("round-trips an empty blob", async () => {
    expect(await blobs.put("t1/empty", Readable.from([]))).toEqual({ bytes: 0 });
    expect((await readAll(await blobs.get("t1/empty"))).length).toBe(0);
  });

  it("streams a 50 MB blob in and out with bounded memory", async () => {
    const total = 50 * MiB;
    const expected = createHash("sha256");
    for await (const chunk of patterned(total)) expected.update(chunk as Buffer);
    let peak = 0;
    const baseline = process.memoryUsage().rss;
    const sample = () => {
      peak = Math.max(peak, process.memoryUsage().rss - baseline);
    };
    const sampler = setInterval(sample, 10);
    try {
      expect(await blobs.put("t1/big", patterned(total))).toEqual({ bytes: total });
      sample();
      const got = createHash("sha256");
      let bytes = 0;
      for await (const chunk of await blobs.get("t1/big")) {
        got.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
        sample();
      }
      expect(bytes).toBe(total);
      expect(got.digest("hex")).toBe(expected.digest("hex"));
    } finally {
      clearInterval(sampler);
    }
    expect(peak).toBeLessThan(150 * MiB);
  });

  it("makes a blob visible only once it is complete", async () => {
    await blobs.put("t1/atomic", Readable.from([Buffer.from("old")]));
    const body = new PassThrough();
    const putting = blobs.put("t1/atomic", body);
    body.write("new-part-1;");
    await new Promise((r) => setImmediate(r));
    expect((await readAll(await blobs.get("t1/atomic"))).toString()).toBe("old");

    const fresh = new PassThrough();
    const puttingFresh = blobs.put("t1/atomic-new", fresh);
    fresh.write("partial");
    await new Promise((r) => setImmediate(r));
    await expectCode(blobs.get("t1/atomic-new"), "blob_not_found");

    body.end("part-2");
    fresh.end();
    await Promise.all([putting, puttingFresh]);
    expect((await readAll(await blobs.get("t1/atomic"))).toString()).toBe("new-part-1;part-2");
    expect((await readAll(await blobs.get("t1/atomic-new"))).toString()).toBe("partial");
  });

  it("abandons an upload when its signal aborts", async () => {
    const body = new PassThrough();
    const controller = new AbortController();
    const putting = blobs.put("t1/aborted", body, { signal: controller.signal });
    body.write("some bytes");
    await new Promise((r) => setImmediate(r));
    controller.abort();
    await expect(putting).rejects.toThrow();
    await expectCode(blobs.get("t1/aborted"), "blob_not_found");
  });

  it("fails the upload and stores nothing when the body errors", async () => {
    const body = new PassThrough();
    const putting = blobs.put("t1/broken", body);
    body.write("first bytes");
    await consumed(body);
    body.destroy(new Error("client went away"));
    await expect(putting).rejects.toThrow();
    await expectCode(blobs.get("t1/broken"), "blob_not_found");
  });

  it("deletes idempotently", async () => {
    await blobs.put("t1/gone", Readable.from([Buffer.from("x")]));
    await blobs.delete("t1/gone");
    await expectCode(blobs.get("t1/gone"), "blob_not_found");
    await blobs.delete("t1/gone");
    await blobs.delete("t1/never-existed");
  });

  it("answers blob_not_found for a missing blob", async () => {
    await expectCode(blobs.get("t1/missing"), "blob_not_found");
  });

  it("rejects keys that could escape the store", async () => {
    for (const key of ["../escape", "t1/../../escape", "/abs", "", ".hidden/../x"]) {
      await expectCode(blobs.put(key, Readable.from([Buffer.from("x")])), "invalid_blob_key");
      await expectCode(blobs.get(key), "invalid_blob_key");
    }
  });
});
