/**
 * Encryption at rest for any BlobStore (decorator): blobs are written through the framed
 * AES-256-GCM stream (src/crypto/frame-cipher.ts) under their file's or batch's data key, and
 * verified while read. Memory stays bounded by one frame; `bytes` reports plaintext bytes.
 */
import { pipeline, type Readable, Transform } from "node:stream";
import type { DataKeys } from "../crypto/data-keys.js";
import { decryptStream, encryptStream } from "../crypto/frame-cipher.js";
import { SluiceError } from "../errors.js";
import { dataKeyOwner } from "./blob-keys.js";
import type { BlobStore, PutResult } from "./blob-store.js";

export class EncryptedBlobStore implements BlobStore {
  readonly #inner: BlobStore;
  readonly #keys: DataKeys;
  readonly #ownerOf: (blobKey: string) => string;

  constructor(inner: BlobStore, keys: DataKeys, ownerOf: (blobKey: string) => string = dataKeyOwner) {
    this.#inner = inner;
    this.#keys = keys;
    this.#ownerOf = ownerOf;
  }

  async #key(blobKey: string): Promise<Buffer> {
    const key = await this.#keys.get(this.#ownerOf(blobKey));
    if (key === null) throw new SluiceError("encryption_disabled", "No master key is configured.");
    return key;
  }

  async put(key: string, body: Readable, options: { signal?: AbortSignal } = {}): Promise<PutResult> {
    // Until the pipeline owns `body`, an error on it must not become an unhandled 'error' event.
    const ignore = () => {};
    body.on("error", ignore);
    let dataKey: Buffer;
    try {
      dataKey = await this.#key(key);
    } catch (err) {
      // Drain and drop the body so a writer waiting on it is not stuck; `ignore` stays attached.
      body.resume();
      throw err;
    }
    body.off("error", ignore);
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    const encrypted = encryptStream(dataKey, key);
    // A failing body destroys `encrypted`, which fails the inner put; the pipeline's own error is
    // awaited too so it is never unhandled.
    const piped = new Promise<void>((resolve) => pipeline(body, counter, encrypted, () => resolve()));
    try {
      await this.#inner.put(key, encrypted, options);
    } finally {
      encrypted.destroy();
      await piped;
    }
    return { bytes };
  }

  async get(key: string, options: { signal?: AbortSignal } = {}): Promise<Readable> {
    const dataKey = await this.#key(key);
    const raw = await this.#inner.get(key, options);
    const plain = decryptStream(dataKey, key);
    // Errors (tampering, a dropped connection) reach the reader through `plain`.
    pipeline(raw, plain, () => {});
    return plain;
  }

  delete(key: string): Promise<void> {
    return this.#inner.delete(key);
  }

  async close(): Promise<void> {
    await this.#inner.close?.();
  }
}
