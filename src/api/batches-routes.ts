/**
 * OpenAI Batches API: create, retrieve, list, cancel; and delete and retry (extensions, for ended
 * batches).
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { cancelBatch, createBatch, DEDUP_MODES, REUSE_MODES } from "../batch/batch-service.js";
import { deleteBatch } from "../batch/delete-batch.js";
import { SUPPORTED_ENDPOINTS } from "../batch/endpoints.js";
import { retryBatch } from "../batch/retry-batch.js";
import type { AppContext } from "../context.js";
import { notFound } from "../errors.js";
import { recordAudit } from "../store/audit.js";
import { getBatch, listBatches } from "../store/batches.js";
import { access } from "./auth.js";
import { batchView, listObject } from "./serializers.js";
import { parseBody, parseId, parseQuery } from "./validation.js";

const metadataSchema = z
  .record(z.string().max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, "metadata may have at most 16 keys");

const createBody = z.object({
  input_file_id: z.string().min(1).max(128),
  endpoint: z.enum(SUPPORTED_ENDPOINTS),
  completion_window: z.string().max(16),
  metadata: metadataSchema.nullish(),
  output_expires_after: z
    .object({ anchor: z.literal("created_at"), seconds: z.number().int().min(3600).max(2592000) })
    .nullish(),
  // Extensions (README "Never pay twice"): which finished lines of the tenant a line may take,
  // and which identical lines of the batch are sent once.
  reuse: z.enum(REUSE_MODES).nullish(),
  dedup: z.enum(DEDUP_MODES).nullish(),
});

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.string().max(128).optional(),
});

export function registerBatchRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.post("/v1/batches", access("tenant"), async (request) => {
    const body = parseBody(createBody, request.body);
    const { tenantId, keyId } = request.principal;
    const row = await createBatch(ctx, {
      tenantId,
      inputFileId: body.input_file_id,
      endpoint: body.endpoint,
      completionWindow: body.completion_window,
      metadata: body.metadata,
      outputExpiresSeconds: body.output_expires_after?.seconds,
      reuse: body.reuse ?? undefined,
      dedup: body.dedup ?? undefined,
    });
    await recordAudit(ctx.store, { tenantId, keyId, action: "batch.create", target: row.id });
    return batchView(ctx.store, row);
  });

  app.get("/v1/batches/:id", access("tenant"), async (request) => {
    const id = parseId("batch", request.params);
    const row = await getBatch(ctx.store, request.principal.tenantId, id);
    if (row === undefined) throw notFound("batch", id);
    return batchView(ctx.store, row);
  });

  app.post("/v1/batches/:id/cancel", access("tenant"), async (request) => {
    const { tenantId, keyId } = request.principal;
    const id = parseId("batch", request.params);
    const row = await cancelBatch(ctx, tenantId, id);
    await recordAudit(ctx.store, { tenantId, keyId, action: "batch.cancel", target: id });
    return batchView(ctx.store, row);
  });

  // Extension (README "Never pay twice"): a new batch over the same input; only what did not succeed runs.
  app.post("/v1/batches/:id/retry", access("tenant"), async (request) => {
    const { tenantId, keyId } = request.principal;
    const id = parseId("batch", request.params);
    const row = await retryBatch(ctx, tenantId, id);
    await recordAudit(ctx.store, { tenantId, keyId, action: "batch.retry", target: row.id });
    return batchView(ctx.store, row);
  });

  app.delete("/v1/batches/:id", access("tenant"), async (request) => {
    const { tenantId, keyId } = request.principal;
    const id = parseId("batch", request.params);
    await deleteBatch(ctx, tenantId, id);
    await recordAudit(ctx.store, { tenantId, keyId, action: "batch.delete", target: id });
    return { id, object: "batch", deleted: true };
  });

  app.get("/v1/batches", access("tenant"), async (request) => {
    const q = parseQuery(listQuery, request.query);
    const rows = await listBatches(ctx.store, {
      tenantId: request.principal.tenantId,
      limit: q.limit + 1,
      after: q.after,
    });
    const page = await Promise.all(rows.slice(0, q.limit).map((b) => batchView(ctx.store, b)));
    return listObject(page, rows.length > q.limit);
  });
}
