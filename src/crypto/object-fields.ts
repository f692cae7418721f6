/**
 * Sealing of a file's or batch's own user-supplied fields (a file's name, a batch's metadata), as
 * line 0 of their key's owner (row-cipher.ts). A file name is sealed under the file's data key: it
 * lives exactly as long as the file. Batch metadata is not under the batch's data key: retention
 * (output_expires_after) shreds that key with the request rows while the batch object, metadata
 * included, stays until deleted; so it has a key of its own (`metadataKeyOwner`), destroyed when
 * the batch is deleted. Opening looks a key up only for a sealed value: rows written without a
 * master key stay readable, and listing unsealed names costs no key lookups.
 */
import type { DataKeys } from "../store/data-keys.js";
import { isSealed, type RowCodec, rowCipher } from "../store/row-codec.js";

export type ObjectField = "filename" | "metadata";

/** The data key owner of a batch's metadata. */
export const metadataKeyOwner = (batchId: string): string => `${batchId}/metadata`;

/** Seals `text` under `owner`'s data key (creating it); identity when encryption is off. */
export async function sealObjectField<T extends string | null>(
  store: { dataKeys: DataKeys; rowCodec: RowCodec },
  owner: string,
  field: ObjectField,
  text: T,
): Promise<T> {
  if (text === null || !store.dataKeys.enabled) return text;
  return (await rowCipher(store, owner)).seal(field, 0, text);
}

export async function openObjectField<T extends string | null>(
  store: { dataKeys: DataKeys; rowCodec: RowCodec },
  owner: string,
  field: ObjectField,
  text: T,
): Promise<T> {
  if (!isSealed(text)) return text;
  return (await rowCipher(store, owner)).open(field, 0, text);
}
