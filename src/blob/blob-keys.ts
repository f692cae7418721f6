/**
 * Blob key layout, in one place:
 *   files/<tenant>/<file id>                    uploaded files
 *   outputs/<tenant>/<batch id>/<attempt>-<kind>.jsonl
 *                                               a batch's output and error files, per finalize
 *                                               attempt (a finalizer that lost its lease writes
 *                                               beside the new owner's files, never over them)
 * The encryption layer derives from a key the object whose data key encrypts the blob: the file,
 * or for outputs, the batch (so deleting the batch shreds its outputs with its request rows).
 */
import { SluiceError } from "../errors.js";

export const fileBlobKey = (tenantId: string, fileId: string) => `files/${tenantId}/${fileId}`;

export const outputBlobKeys = (tenantId: string, batchId: string, attempt: string) => ({
  output: `outputs/${tenantId}/${batchId}/${attempt}-output.jsonl`,
  errors: `outputs/${tenantId}/${batchId}/${attempt}-errors.jsonl`,
});

export function dataKeyOwner(blobKey: string): string {
  const [kind, tenant, owner] = blobKey.split("/");
  if ((kind === "files" || kind === "outputs") && tenant && owner) return owner;
  throw new SluiceError("invalid_blob_key", `Blob key '${blobKey}' names no file or batch to encrypt it for.`);
}
