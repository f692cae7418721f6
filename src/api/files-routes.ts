/** OpenAI Files API: upload (streamed to the blob store), list, retrieve, delete, content. */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../context.js";
import { invalidRequest, notFound, SluiceError, tooLarge, unsupportedMediaType } from "../errors.js";
import { newFileId } from "../ids.js";
import { deleteFileRow, getFile, insertFile, listFiles } from "../store/files.js";
import { nowSeconds } from "../store/tenants.js";
import { fileObject, listObject } from "./serializers.js";
import { parseQuery } from "./validation.js";

const UPLOAD_PURPOSES = ["batch", "user_data", "fine-tune", "assistants", "vision", "evals"] as const;

const listQuery = z.object({
  purpose: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(10000).default(10000),
  order: z.enum(["asc", "desc"]).default("desc"),
  after: z.string().max(128).optional(),
});

export const fileBlobKey = (tenantId: string, fileId: string) => `files/${tenantId}/${fileId}`;

export function registerFileRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.post("/v1/files", async (request, reply) => {
    if (!request.isMultipart()) throw unsupportedMediaType("Uploads must be multipart/form-data with a 'file' part.");
    const { tenantId } = request.principal;
    const id = newFileId();
    const blobKey = fileBlobKey(tenantId, id);
    const fields: Record<string, string> = {};
    let upload: { filename: string; bytes: number } | undefined;
    try {
      const parts = request.parts({
        limits: { fileSize: ctx.limits.maxFileBytes, files: 1, fields: 16, fieldSize: 4096, parts: 20 },
      });
      for await (const part of parts) {
        if (part.type === "file") {
          if (part.fieldname !== "file") {
            part.file.resume();
            throw invalidRequest(`Unexpected file part '${part.fieldname}'; send the file as 'file'.`, part.fieldname);
          }
          const { bytes } = await ctx.blobs.put(blobKey, part.file);
          if (part.file.truncated) throw tooLarge(`File exceeds the ${ctx.limits.maxFileBytes}-byte limit.`, "file");
          upload = { filename: safeFilename(part.filename), bytes };
        } else {
          fields[part.fieldname] = String(part.value);
        }
      }
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
        filename: upload.filename,
        bytes: upload.bytes,
        created_at: created,
        expires_at: expiresAt,
        status: "processed",
        blob_key: blobKey,
      };
      await insertFile(ctx.store, row);
      return reply.send(fileObject(row));
    } catch (err) {
      await ctx.blobs.delete(blobKey).catch(() => {});
      const code = (err as { code?: string }).code;
      if (code === "FST_REQ_FILE_TOO_LARGE")
        throw tooLarge(`File exceeds the ${ctx.limits.maxFileBytes}-byte limit.`, "file");
      if (err instanceof SluiceError) throw err;
      if (typeof code === "string" && code.startsWith("FST_")) throw err;
      throw invalidRequest(`Malformed multipart body: ${(err as Error).message}`);
    }
  });

  app.get("/v1/files", async (request) => {
    const q = parseQuery(listQuery, request.query);
    const rows = await listFiles(ctx.store, { tenantId: request.principal.tenantId, ...q, limit: q.limit + 1 });
    const hasMore = rows.length > q.limit;
    return listObject(rows.slice(0, q.limit).map(fileObject), hasMore);
  });

  app.get<{ Params: { id: string } }>("/v1/files/:id", async (request) => {
    const row = await getFile(ctx.store, request.principal.tenantId, request.params.id);
    if (row === undefined) throw notFound("file", request.params.id);
    return fileObject(row);
  });

  app.delete<{ Params: { id: string } }>("/v1/files/:id", async (request) => {
    const { tenantId } = request.principal;
    const row = await getFile(ctx.store, tenantId, request.params.id);
    if (row === undefined) throw notFound("file", request.params.id);
    await deleteFileRow(ctx.store, tenantId, row.id);
    await ctx.blobs.delete(row.blob_key);
    return { id: row.id, object: "file", deleted: true };
  });

  app.get<{ Params: { id: string } }>("/v1/files/:id/content", async (request, reply) => {
    const row = await getFile(ctx.store, request.principal.tenantId, request.params.id);
    if (row === undefined) throw notFound("file", request.params.id);
    const stream = await ctx.blobs.get(row.blob_key);
    return reply
      .header("content-type", "application/octet-stream")
      .header("content-length", String(row.bytes))
      .header("content-disposition", `attachment; filename="${row.filename.replace(/"/g, "")}"`)
      .send(stream);
  });
}

/** Keeps only the base name, printable and bounded: names are metadata, never paths. */
export function safeFilename(name: string | undefined): string {
  const base = (name ?? "upload").split(/[\\/]/).pop() ?? "upload";
  const clean = base.replace(/[\u0000-\u001f\u007f"]/g, "").slice(0, 255);
  return clean === "" || clean === "." || clean === ".." ? "upload" : clean;
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
