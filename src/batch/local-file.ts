/** Imports a local JSONL file as a `batch` file (streamed into the blob store): `sluice run`, benches. */
import { createReadStream } from "node:fs";
import { basename } from "node:path";
import { fileBlobKey } from "../blob/blob-keys.js";
import type { AppContext } from "../context.js";
import { sealObjectField } from "../crypto/object-fields.js";
import { newFileId } from "../ids.js";
import { insertFile } from "../store/files.js";
import { nowSeconds } from "../store/tenants.js";

export async function importLocalFile(ctx: AppContext, tenantId: string, path: string): Promise<string> {
  const id = newFileId();
  const blobKey = fileBlobKey(tenantId, id);
  const { bytes } = await ctx.blobs.put(blobKey, createReadStream(path));
  await insertFile(ctx.store, {
    id,
    tenant_id: tenantId,
    purpose: "batch",
    filename: await sealObjectField(ctx.store, id, "filename", basename(path)),
    bytes,
    created_at: nowSeconds(),
    expires_at: null,
    status: "processed",
    blob_key: blobKey,
  });
  return id;
}
