/** OpenAI Files API: upload (streamed to the blob store), list, retrieve, delete, content. */

import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { fileBlobKey } from "../blob/blob-keys.js";
import { isInputUrl, openInput } from "../blob/input-source.js";
import type { AppContext } from "../context.js";
import { openObjectField, sealObjectField } from "../crypto/object-fields.js";
import { invalidRequest, notFound, unsupportedMediaType } from "../errors.js";
import { newFileId } from "../ids.js";
import { recordAudit } from "../store/audit.js";
import { deleteFileRow, getFile, insertFile, listFiles } from "../store/files.js";
import { nowSeconds } from "../store/tenants.js";
import { tenantLimits } from "../tenancy/tenant-limits.js";
import { access } from "./auth.js";
import { receiveUpload } from "./multipart-upload.js";
import { fileObject, fileView, listObject } from "./serializers.js";
import { parseId, parseQuery } from "./validation.js";

const UPLOAD_PURPOSES = ["batch", "user_data", "fine-tune", "assistants", "vision", "evals"] as const;

const listQuery = z.object({
  purpose: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(10000).default(10000),
  order: z.enum(["asc", "desc"]).default("desc"),
  after: z.string().max(128).optional(),
});

export { fileBlobKey };

export function registerFileRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.post("/v1/files", access("tenant"), async (request, reply) => {
    if (!request.isMultipart()) throw unsupportedMediaType("Uploads must be multipart/form-data with a 'file' part.");
    const { tenantId } = request.principal;
    const { maxFileBytes } = await tenantLimits(ctx.store, tenantId, ctx.limits);
    const id = newFileId();
    const blobKey = fileBlobKey(tenantId, id);
    try {
      const { upload, fields } = await receiveUpload(request, ctx, { blobKey, maxFileBytes });
      if (upload === undefined) throw invalidRequest("Missing required part 'file'.", "file");
      const purpose = fields.purpose;
      if (purpose === undefined) throw invalidRequest("Missing required field 'purpose'.", "purpose");
      if (!(UPLOAD_PURPOSES as readonly string[]).includes(purpose)) {
        throw invalidRequest(`Invalid purpose '${purpose}'. Use one of: ${UPLOAD_PURPOSES.join(", ")}.`, "purpose");
      }
      const created = nowSeconds();
      const expiresAt = parseExpiresAfter(fields, created);
      const row = {
        id,
        tenant_id: tenantId,
        purpose,
        filename: safeFilename(upload.filename),
        bytes: upload.bytes,
        created_at: created,
        expires_at: expiresAt,
        status: "processed",
        blob_key: blobKey,
        line_count: upload.lines,
        token_estimate: upload.tokens,
      };
      // The name is user data: stored sealed under the file's data key, answered in plaintext.
      await insertFile(ctx.store, { ...row, filename: await sealObjectField(ctx.store, id, "filename", row.filename) });
      return reply.send(fileObject(row));
    } catch (err) {
      await ctx.blobs.delete(blobKey).catch(() => {});
      await ctx.store.dataKeys.destroy(id).catch(() => {});
      // Client errors arrive as SluiceErrors; anything else (blob store, database) is a logged 500.
      throw err;
    }
  });

  app.get("/v1/files", access("tenant"), async (request) => {
    const q = parseQuery(listQuery, request.query);
    const rows = await listFiles(ctx.store, { tenantId: request.principal.tenantId, ...q, limit: q.limit + 1 });
    const hasMore = rows.length > q.limit;
    const page = await Promise.all(rows.slice(0, q.limit).map((f) => fileView(ctx.store, f)));
    return listObject(page, hasMore);
  });

  app.get("/v1/files/:id", access("tenant"), async (request) => {
    const id = parseId("file", request.params);
    const row = await getFile(ctx.store, request.principal.tenantId, id);
    if (row === undefined) throw notFound("file", id);
    return fileView(ctx.store, row);
  });

  app.delete("/v1/files/:id", access("tenant"), async (request) => {
    const { tenantId, keyId } = request.principal;
    const id = parseId("file", request.params);
    const row = await getFile(ctx.store, tenantId, id);
    if (row === undefined) throw notFound("file", id);
    await deleteFileRow(ctx.store, tenantId, row.id);
    // Crypto-shredding: without its data key, any copy of the blob left behind is unreadable.
    await ctx.store.dataKeys.destroy(row.id);
    // A file registered from an s3:// input URL points at the user's own object: never delete that.
    if (!isInputUrl(row.blob_key)) await ctx.blobs.delete(row.blob_key);
    await recordAudit(ctx.store, { tenantId, keyId, action: "file.delete", target: row.id });
    return { id: row.id, object: "file", deleted: true };
  });

  app.get("/v1/files/:id/content", access("tenant"), async (request, reply) => {
    const { tenantId, keyId } = request.principal;
    const id = parseId("file", request.params);
    const row = await getFile(ctx.store, tenantId, id);
    if (row === undefined) throw notFound("file", id);
    const stream = await openInput(ctx.blobs, row.blob_key);
    await recordAudit(ctx.store, { tenantId, keyId, action: "file.download", target: row.id });
    return reply
      .header("content-type", "application/octet-stream")
      .header("content-length", String(row.bytes))
      .header("content-disposition", contentDisposition(await openObjectField(ctx.store, id, "filename", row.filename)))
      .send(stream);
  });
}

/** Keeps only the base name, printable and bounded: names are metadata, never paths. */
export function safeFilename(name: string | undefined): string {
  const base = (name ?? "upload").split(/[\\/]/).pop() ?? "upload";
  const clean = base.replace(/[\u0000-\u001f\u007f"]/g, "").slice(0, 255);
  return clean === "" || clean === "." || clean === ".." ? "upload" : clean;
}

/** ASCII fallback plus RFC 5987 `filename*` (header values must be Latin-1; names may be any Unicode). */
function contentDisposition(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  let encoded: string;
  try {
    encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  } catch {
    return `attachment; filename="${ascii}"`; // lone surrogates: the ASCII name only
  }
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

function parseExpiresAfter(fields: Record<string, string>, created: number): number | null {
  const anchor = fields["expires_after[anchor]"];
  const seconds = fields["expires_after[seconds]"];
  if (anchor === undefined && seconds === undefined) return null;
  if (anchor !== "created_at")
    throw invalidRequest("expires_after[anchor] must be 'created_at'.", "expires_after.anchor");
  const s = Number(seconds);
  if (!Number.isInteger(s) || s < 3600 || s > 2592000) {
    throw invalidRequest(
      "expires_after[seconds] must be an integer between 3600 and 2592000.",
      "expires_after.seconds",
    );
  }
  return created + s;
}
