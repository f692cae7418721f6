/** The encryption decorator over a real folder and a real store: nothing readable on disk. */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataKeyOwner, outputBlobKeys } from "../../src/blob/blob-keys.js";
import { EncryptedBlobStore } from "../../src/blob/encrypted-blob-store.js";
import { LocalBlobStore } from "../../src/blob/local-blob-store.js";
import { parseMasterKeys } from "../../src/crypto/master-keys.js";
import { encryptionAtRest } from "../../src/crypto/row-cipher.js";
import { openStore, type Store } from "../../src/store/store.js";

let dir: string;
let store: Store;
let blobs: EncryptedBlobStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-enc-"));
  store = await openStore(
    { kind: "sqlite", path: join(dir, "sluice.db") },
    { encryption: encryptionAtRest(parseMasterKeys(randomBytes(32).toString("base64"), "test")) },
  );
  blobs = new EncryptedBlobStore(new LocalBlobStore(join(dir, "blobs")), store.dataKeys);
});
afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const readAll = async (s: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts).toString();
};

describe("encrypted blob store", () => {
  it("maps blob keys to the file or batch whose data key encrypts them", () => {
    expect(dataKeyOwner("files/default/file-abc")).toBe("file-abc");
    expect(dataKeyOwner(outputBlobKeys("ten_1", "batch_x", "att1").errors)).toBe("batch_x");
    expect(() => dataKeyOwner("elsewhere/x")).toThrow(/names no file or batch/);
  });

  it("stores ciphertext only, reports plaintext bytes, and reads back the plaintext", async () => {
    const text = "SECRET-MARKER-0042 ".repeat(10_000);
    const res = await blobs.put("files/t1/file-enc", Readable.from([Buffer.from(text)]));
    expect(res.bytes).toBe(Buffer.byteLength(text));
    const raw = await readFile(join(dir, "blobs", "files/t1/file-enc"));
    expect(raw.includes("SECRET-MARKER")).toBe(false);
    expect(await readAll(await blobs.get("files/t1/file-enc"))).toBe(text);
  });

  it("fails a read of a tampered blob", async () => {
    await blobs.put("files/t1/file-tamper", Readable.from([Buffer.from("hello world")]));
    const path = join(dir, "blobs", "files/t1/file-tamper");
    const raw = await readFile(path);
    raw[raw.length - 20] = (raw[raw.length - 20] as number) ^ 0xff;
    await writeFile(path, raw);
    await expect(readAll(await blobs.get("files/t1/file-tamper"))).rejects.toMatchObject({ code: "blob_integrity" });
  });

  it("cannot read a blob once its data key is destroyed (crypto-shredding)", async () => {
    await blobs.put("files/t1/file-shred", Readable.from([Buffer.from("to be shredded")]));
    await store.dataKeys.destroy("file-shred");
    await expect(readAll(await blobs.get("files/t1/file-shred"))).rejects.toMatchObject({ code: "blob_integrity" });
  });
});
