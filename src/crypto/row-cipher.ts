/**
 * Encryption of user data kept in the database, under the batch's (or file's) data key
 * (AES-256-GCM, a random 96-bit nonce per value). A sealed value is `enc1:` + base64(nonce ‖
 * ciphertext ‖ tag); its AAD binds the batch, line and column, so values cannot be moved between
 * rows. `open` passes through values that were never sealed (rows written without a master key,
 * and fixed texts such as the cancel/expiry errors), and fails on a sealed value it cannot verify.
 * This is the implementation of the store's row codec (src/store/row-codec.ts, which declares the
 * interface and where it is called); `encryptionAtRest` hands it and the data keys to `openStore`.
 * Resolve ciphers before a transaction: a key lookup must not wait on its connection.
 * Fields of the object itself (a file's name, a batch's metadata) are sealed as line 0 of their
 * owner (object-fields.ts).
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { SluiceError } from "../errors.js";
import type { DataKeyRows } from "../store/data-keys.js";
import { type FieldCipher, plainDigest, type RowCodec, type RowField, SEALED_PREFIX } from "../store/row-codec.js";
import { createDataKeys, type DataKeys } from "./data-keys.js";
import type { MasterKeyring } from "./master-keys.js";

export type { FieldCipher, RowField } from "../store/row-codec.js";
export { isSealed } from "../store/row-codec.js";

const PREFIX = SEALED_PREFIX;
const HASH_PREFIX = "h1:";
const NONCE = 12;
const TAG = 16;

// Line 0: a field of the file or batch itself (its name, its metadata).
const undecryptable = (ownerId: string, line: number, why: string, cause?: unknown) =>
  new SluiceError(
    "row_integrity",
    `Stored data of '${ownerId}'${line > 0 ? ` line ${line}` : ""} cannot be decrypted: ${why}.`,
    { cause },
  );

function cipherFor(batchId: string, key: Buffer | null): FieldCipher {
  const aad = (field: RowField, line: number) => Buffer.from(`sluice/row/v1\0${batchId}\0${line}\0${field}`);
  let hashKey: Buffer | undefined;
  let digestKey: Buffer | undefined;
  return {
    digest(text: string): string {
      if (key === null) return plainDigest(text);
      digestKey ??= Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), "sluice/digest/v1", 32));
      return `${HASH_PREFIX}${createHmac("sha256", digestKey).update(text, "utf8").digest("base64url")}`;
    },
    customIdHash(customId: string): string {
      if (key === null) return customId;
      hashKey ??= Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), "sluice/custom-id/v1", 32));
      return `${HASH_PREFIX}${createHmac("sha256", hashKey).update(customId, "utf8").digest("base64url")}`;
    },
    seal<T extends string | null>(field: RowField, line: number, text: T): T {
      if (key === null || text === null) return text;
      const nonce = randomBytes(NONCE);
      const cipher = createCipheriv("aes-256-gcm", key, nonce);
      cipher.setAAD(aad(field, line));
      const body = Buffer.concat([cipher.update(text, "utf8"), cipher.final()]);
      return `${PREFIX}${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64")}` as T;
    },
    open<T extends string | null>(field: RowField, line: number, text: T): T {
      if (text === null || !text.startsWith(PREFIX)) return text;
      if (key === null) throw undecryptable(batchId, line, "no master key is configured");
      const raw = Buffer.from(text.slice(PREFIX.length), "base64");
      if (raw.length < NONCE + TAG) throw undecryptable(batchId, line, "value too short");
      try {
        const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, NONCE));
        decipher.setAAD(aad(field, line));
        decipher.setAuthTag(raw.subarray(raw.length - TAG));
        return Buffer.concat([decipher.update(raw.subarray(NONCE, raw.length - TAG)), decipher.final()]).toString(
          "utf8",
        ) as T;
      } catch (err) {
        throw undecryptable(batchId, line, "authentication failed", err);
      }
    },
  };
}

/** The store's row codec over these data keys (identity when encryption is off). */
export function createRowCodec(dataKeys: DataKeys): RowCodec {
  return { forOwner: async (ownerId) => cipherFor(ownerId, await dataKeys.get(ownerId)) };
}

/**
 * Encryption at rest for `openStore`: data keys wrapped by `ring` (plaintext without one) and the
 * row codec over them.
 */
export const encryptionAtRest =
  (ring: MasterKeyring | undefined) =>
  (rows: DataKeyRows): { dataKeys: DataKeys; rowCodec: RowCodec } => {
    const dataKeys = createDataKeys(rows, ring);
    return { dataKeys, rowCodec: createRowCodec(dataKeys) };
  };
