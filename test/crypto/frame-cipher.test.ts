/** The framed blob cipher: round trips at frame boundaries, and every kind of tampering fails. */
import { randomBytes } from "node:crypto";
import { Readable, type Transform } from "node:stream";
import { describe, expect, it } from "vitest";
import { decryptStream, encryptStream, FRAME_BYTES } from "../../src/crypto/frame-cipher.js";

const key = randomBytes(32);
const HEADER = 16;
const FRAME = 4 + FRAME_BYTES + 16;

async function run(input: Buffer | Buffer[], t: Transform): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of Readable.from(Array.isArray(input) ? input : [input]).pipe(t)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const seal = (plain: Buffer, ctx = "files/t/file-1") => run(plain, encryptStream(key, ctx));
const open = (sealed: Buffer, ctx = "files/t/file-1", k = key) => run(sealed, decryptStream(k, ctx));

async function expectIntegrityError(p: Promise<unknown>): Promise<void> {
  await expect(p).rejects.toMatchObject({ code: "blob_integrity" });
}

describe("frame cipher", () => {
  it.each([0, 1, FRAME_BYTES - 1, FRAME_BYTES, FRAME_BYTES + 1, 3 * FRAME_BYTES + 17])(
    "round-trips %i bytes, in any chunking",
    async (size) => {
      const plain = randomBytes(size);
      const sealed = await seal(plain);
      const frames = Math.max(1, Math.ceil(size / FRAME_BYTES));
      expect(sealed.length).toBe(HEADER + size + frames * 20);
      expect((await open(sealed)).equals(plain)).toBe(true);
      // Byte-at-a-time and odd-sized chunks parse the same.
      const chunks: Buffer[] = [];
      for (let i = 0; i < sealed.length; i += 7777) chunks.push(sealed.subarray(i, i + 7777));
      expect((await run(chunks, decryptStream(key, "files/t/file-1"))).equals(plain)).toBe(true);
    },
  );

  it("never repeats ciphertext for the same plaintext (random nonce prefix)", async () => {
    const plain = Buffer.from("same text");
    expect((await seal(plain)).equals(await seal(plain))).toBe(false);
  });

  it("detects a flipped ciphertext byte, header byte or length", async () => {
    const sealed = await seal(randomBytes(2 * FRAME_BYTES + 5));
    for (const at of [HEADER + 10, 9, HEADER + FRAME + 100, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at] = (bad[at] as number) ^ 0x01;
      await expectIntegrityError(open(bad));
    }
    const badMagic = Buffer.from(sealed);
    badMagic[0] = 0;
    await expectIntegrityError(open(badMagic));
  });

  it("detects truncation: a dropped final frame, a cut frame, a missing header", async () => {
    const sealed = await seal(randomBytes(2 * FRAME_BYTES + 5));
    await expectIntegrityError(open(sealed.subarray(0, HEADER + 2 * FRAME)));
    await expectIntegrityError(open(sealed.subarray(0, sealed.length - 3)));
    await expectIntegrityError(open(sealed.subarray(0, 10)));
    await expectIntegrityError(open(Buffer.alloc(0)));
  });

  it("detects reordered frames and data appended after the final frame", async () => {
    const sealed = await seal(randomBytes(3 * FRAME_BYTES));
    const f0 = sealed.subarray(HEADER, HEADER + FRAME);
    const f1 = sealed.subarray(HEADER + FRAME, HEADER + 2 * FRAME);
    const rest = sealed.subarray(HEADER + 2 * FRAME);
    await expectIntegrityError(open(Buffer.concat([sealed.subarray(0, HEADER), f1, f0, rest])));
    await expectIntegrityError(open(Buffer.concat([sealed, Buffer.from("x")])));
    await expectIntegrityError(open(Buffer.concat([sealed, sealed.subarray(HEADER)])));
  });

  it("binds the blob to its key (context) and to its data key", async () => {
    const sealed = await seal(Buffer.from("hello"));
    await expectIntegrityError(open(sealed, "files/t/file-2"));
    await expectIntegrityError(open(sealed, "files/t/file-1", randomBytes(32)));
  });

  it("decrypts with memory bounded by a frame, however large the blob", async () => {
    const t = decryptStream(key, "c");
    const enc = encryptStream(key, "c");
    let maxBuffered = 0;
    let total = 0;
    const source = new Readable({
      read() {
        if (total >= 32 * 1024 * 1024) return void this.push(null);
        total += 1024 * 1024;
        this.push(Buffer.alloc(1024 * 1024, 7));
      },
    });
    let out = 0;
    for await (const c of source.pipe(enc).pipe(t)) {
      out += (c as Buffer).length;
      maxBuffered = Math.max(maxBuffered, t.writableLength + t.readableLength, enc.writableLength);
    }
    expect(out).toBe(32 * 1024 * 1024);
    expect(maxBuffered).toBeLessThan(4 * 1024 * 1024);
  });
});
