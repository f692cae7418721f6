/**
 * The row codec: how user data in request rows (bodies, results, errors, custom_ids) and objects'
 * own fields (file names, batch metadata) are sealed on the way in and opened on the way out. The
 * store declares the interface and calls it where it writes (checkpoint) and reads (claim, output);
 * the implementation is handed to it (`openStore`'s `encryption`, src/crypto/row-cipher.ts), so the
 * store holds no key material and no cipher. Without encryption the codec is the identity, and a
 * value found sealed (written under a master key that is not configured now) fails clearly.
 */
import { createHash } from "node:crypto";
import { SluiceError } from "../errors.js";

export type RowField = "body" | "result" | "error" | "custom_id" | "filename" | "metadata";

export interface FieldCipher {
  seal<T extends string | null>(field: RowField, line: number, text: T): T;
  open<T extends string | null>(field: RowField, line: number, text: T): T;
  /**
   * The key that keeps custom_ids unique within the batch (`requests.custom_id_hash`): sealed ids
   * differ on every write, so the unique index cannot be on them. Without encryption the id is its
   * own key (it is stored in plaintext anyway).
   */
  customIdHash(customId: string): string;
  /**
   * A keyed hash of `text` under this owner's key (`h1:` + HMAC-SHA256 under an HKDF of it), for
   * lookups that must not hold plaintext (request reuse keys); without encryption a plain
   * SHA-256 (`s1:`), fixed-size either way.
   */
  digest(text: string): string;
}

export interface RowCodec {
  /** The cipher of one owner's values (a batch's rows, a file's name); resolve it before a transaction. */
  forOwner(ownerId: string): Promise<FieldCipher>;
}

/** How a sealed value starts (the format is the codec's; the store only needs to recognise it). */
export const SEALED_PREFIX = "enc1:";

/** True when `text` was sealed (opening it needs its owner's data key). */
export const isSealed = (text: string | null): boolean => text?.startsWith(SEALED_PREFIX) ?? false;

const plaintextCipher = (ownerId: string): FieldCipher => ({
  seal: (_field, _line, text) => text,
  open<T extends string | null>(_field: RowField, line: number, text: T): T {
    if (!isSealed(text)) return text;
    throw new SluiceError(
      "row_integrity",
      `Stored data of '${ownerId}'${line > 0 ? ` line ${line}` : ""} cannot be decrypted: no master key is configured.`,
    );
  },
  customIdHash: (customId) => customId,
  digest: plainDigest,
});

/** SHA-256 of a text, as a fixed-size key (no secret: the store is plaintext without a master key). */
export const plainDigest = (text: string): string =>
  `s1:${createHash("sha256").update(text, "utf8").digest("base64url")}`;

export const plaintextRowCodec: RowCodec = { forOwner: async (ownerId) => plaintextCipher(ownerId) };

/** The cipher for one batch's rows. */
export function rowCipher(store: { rowCodec: RowCodec }, batchId: string): Promise<FieldCipher> {
  return store.rowCodec.forOwner(batchId);
}

/** Ciphers for several batches at once, looked up before a transaction starts. */
export async function rowCiphers(
  store: { rowCodec: RowCodec },
  batchIds: Iterable<string>,
): Promise<Map<string, FieldCipher>> {
  const out = new Map<string, FieldCipher>();
  for (const id of new Set(batchIds)) out.set(id, await rowCipher(store, id));
  return out;
}
