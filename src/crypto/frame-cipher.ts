/**
 * A framed streaming cipher (AES-256-GCM) for blobs: memory stays bounded by one frame whatever
 * the blob's size, and any change is detected. Layout:
 *
 *   header  "SLCE" | version 0x01 | 3 zero bytes | 8-byte random nonce prefix          (16 bytes)
 *   frame*  u32 BE (plaintext length | 0x80000000 on the last frame) | ciphertext | 16-byte tag
 *
 * Frame i's nonce is prefix ‖ u32 BE i, and its AAD binds the header, the blob's context (its
 * key), the counter, the length and the final flag: reordered, dropped, swapped or altered frames
 * fail authentication; a stream that ends before a final frame, or continues after it, is
 * rejected as truncated or extended. Every blob has at least one frame (the final one).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { SluiceError } from "../errors.js";

export const FRAME_BYTES = 64 * 1024;
const MAGIC = Buffer.from("SLCE");
const VERSION = 1;
const HEADER_BYTES = 16;
const TAG_BYTES = 16;
const FINAL = 0x80000000;
const MAX_FRAMES = 0xffffffff;

const corrupt = (why: string) =>
  new SluiceError("blob_integrity", `Encrypted blob failed verification: ${why}.`, { status: 500 });

function frameAad(header: Buffer, context: Buffer, counter: number, length: number, final: boolean): Buffer {
  const meta = Buffer.alloc(9);
  meta.writeUInt32BE(counter, 0);
  meta.writeUInt32BE(length, 4);
  meta.writeUInt8(final ? 1 : 0, 8);
  return Buffer.concat([header, context, meta]);
}

function nonceFor(prefix: Buffer, counter: number): Buffer {
  const nonce = Buffer.alloc(12);
  prefix.copy(nonce, 0);
  nonce.writeUInt32BE(counter, 8);
  return nonce;
}

/** Plaintext in, ciphertext out. `context` (the blob key) is authenticated with every frame. */
export function encryptStream(key: Buffer, context: string): Transform {
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt8(VERSION, 4);
  const prefix = randomBytes(8);
  prefix.copy(header, 8);
  const ctx = Buffer.from(context);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let counter = 0;
  let started = false;

  const seal = (plain: Buffer, final: boolean): Buffer => {
    if (counter >= MAX_FRAMES) throw new SluiceError("blob_too_large", "Blob exceeds the encrypted frame limit.");
    const cipher = createCipheriv("aes-256-gcm", key, nonceFor(prefix, counter));
    cipher.setAAD(frameAad(header, ctx, counter, plain.length, final));
    const body = Buffer.concat([cipher.update(plain), cipher.final()]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE((plain.length | (final ? FINAL : 0)) >>> 0, 0);
    counter++;
    return Buffer.concat([len, body, cipher.getAuthTag()]);
  };

  const take = (n: number): Buffer => {
    const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    return out;
  };

  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        if (!started) {
          started = true;
          this.push(header);
        }
        pending.push(chunk);
        pendingBytes += chunk.length;
        // A frame is sealed only once a byte after it exists: the last one must carry the flag.
        while (pendingBytes > FRAME_BYTES) this.push(seal(take(FRAME_BYTES), false));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        if (!started) this.push(header);
        cb(null, seal(take(pendingBytes), true));
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

/** Ciphertext in, verified plaintext out; fails with `blob_integrity` on any mismatch. */
export function decryptStream(key: Buffer, context: string): Transform {
  const ctx = Buffer.from(context);
  // Incoming chunks are only joined once a whole frame (or the header) is there: one copy per frame.
  let chunks: Buffer[] = [];
  let have = 0;
  let header: Buffer | undefined;
  let counter = 0;
  let done = false;

  const peek = (n: number): Buffer | undefined => {
    if (have < n) return undefined;
    const first = chunks[0] as Buffer;
    if (first.length >= n) return first;
    const all = Buffer.concat(chunks, have);
    chunks = [all];
    return all;
  };
  const consume = (n: number) => {
    const first = chunks[0] as Buffer;
    chunks[0] = first.subarray(n);
    have -= n;
    if ((chunks[0] as Buffer).length === 0) chunks.shift();
  };

  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        if (done) throw corrupt("data after the final frame");
        chunks.push(chunk);
        have += chunk.length;
        if (header === undefined) {
          const h = peek(HEADER_BYTES);
          if (h === undefined) return cb();
          if (!h.subarray(0, 4).equals(MAGIC) || h.readUInt8(4) !== VERSION)
            throw corrupt("not a Sluice encrypted blob");
          header = Buffer.from(h.subarray(0, HEADER_BYTES));
          consume(HEADER_BYTES);
        }
        for (;;) {
          const head = peek(4);
          if (head === undefined) break;
          if (done) throw corrupt("data after the final frame");
          const field = head.readUInt32BE(0);
          const final = (field & FINAL) !== 0;
          const length = field & ~FINAL;
          if (length > FRAME_BYTES) throw corrupt("frame length out of range");
          const total = 4 + length + TAG_BYTES;
          const frame = peek(total);
          if (frame === undefined) break;
          const decipher = createDecipheriv("aes-256-gcm", key, nonceFor(header.subarray(8, 16), counter));
          decipher.setAAD(frameAad(header, ctx, counter, length, final));
          decipher.setAuthTag(frame.subarray(4 + length, total));
          let plain: Buffer;
          try {
            plain = Buffer.concat([decipher.update(frame.subarray(4, 4 + length)), decipher.final()]);
          } catch {
            throw corrupt(`frame ${counter} does not authenticate`);
          }
          counter++;
          done = final;
          consume(total);
          if (plain.length > 0) this.push(plain);
        }
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      if (!done) return cb(corrupt(header === undefined ? "missing header" : "truncated (no final frame)"));
      cb(have > 0 ? corrupt("data after the final frame") : null);
    },
  });
}
