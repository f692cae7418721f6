/**
 * Encryption of request bodies and results kept in the database, under the batch's data key
 * (AES-256-GCM, a random 96-bit nonce per value). A sealed value is `enc1:` + base64(nonce ‖
 * ciphertext ‖ tag); its AAD binds the batch, line and column, so values cannot be moved between
 * rows. `open` passes through values that were never sealed (rows written without a master key,
 * and fixed texts such as the cancel/expiry errors), and fails on a sealed value it cannot verify.
 * The engine calls this module in one line where it writes (ingest, checkpoint) and reads (claim,
 * output); resolve ciphers before a transaction: a key lookup must not wait on its connection.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { SluiceError } from "../errors.js";
import type { DataKeys } from "./data-keys.js";

export type RowField = "body" | "result" | "error";

export interface FieldCipher {
  seal<T extends string | null>(field: RowField, line: number, text: T): T;
  open<T extends string | null>(field: RowField, line: number, text: T): T;
}

const PREFIX = "enc1:";
const NONCE = 12;
const TAG = 16;

const undecryptable = (batchId: string, line: number, why: string, cause?: unknown) =>
  new SluiceError("row_integrity", `Stored data of batch '${batchId}' line ${line} cannot be decrypted: ${why}.`, {
    cause,
  });

function cipherFor(batchId: string, key: Buffer | null): FieldCipher {
  const aad = (field: RowField, line: number) => Buffer.from(`sluice/row/v1\0${batchId}\0${line}\0${field}`);
  return {
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

/** The cipher for one batch's rows (identity when encryption is off). */
export async function rowCipher(store: { dataKeys: DataKeys }, batchId: string): Promise<FieldCipher> {
  return cipherFor(batchId, await store.dataKeys.get(batchId));
}

/** Ciphers for several batches at once, looked up before a transaction starts. */
export async function rowCiphers(
  store: { dataKeys: DataKeys },
  batchIds: Iterable<string>,
): Promise<Map<string, FieldCipher>> {
  const out = new Map<string, FieldCipher>();
  for (const id of new Set(batchIds)) out.set(id, await rowCipher(store, id));
  return out;
}
