/**
 * Extensions to OpenAI's API (documented in the README):
 * - GET /v1/batches/{id}/output?type=output|error|all — the results finished so far, streamed in
 *   input order while the batch runs (OpenAI only delivers files at the end);
 * - GET /v1/batches/{id}/events — Server-Sent Events: a `batch` event carrying the Batch object
 *   whenever its status or counts change, ending after a terminal status, or within a few seconds
 *   of the key that opened it being revoked.
 * Both read the store, so they work on any API replica, not only the process running the work.
 */
import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { isTerminal } from "../batch/lifecycle.js";
import { finishedText } from "../batch/result-stream.js";
import type { AppContext } from "../context.js";
import { notFound } from "../errors.js";
import { isKeyActive } from "../store/api-keys.js";
import { recordAudit } from "../store/audit.js";
import { getBatch } from "../store/batches.js";
import { access } from "./auth.js";
import { batchView } from "./serializers.js";
import { parseId, parseQuery } from "./validation.js";

/** How often an open event stream re-checks that its key is still active. */
const KEY_RECHECK_MS = 2000;

const outputQuery = z.object({ type: z.enum(["output", "error", "all"]).default("output") });

export function registerBatchStreamRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get("/v1/batches/:id/output", access("tenant"), async (request, reply) => {
    const { tenantId, keyId } = request.principal;
    const id = parseId("batch", request.params);
    const { type } = parseQuery(outputQuery, request.query);
    const batch = await getBatch(ctx.store, tenantId, id);
    if (batch === undefined) throw notFound("batch", id);
    await recordAudit(ctx.store, { tenantId, keyId, action: "batch.output.read", target: id });
    const abort = new AbortController();
    request.raw.on("close", () => abort.abort());
    return reply
      .header("content-type", "application/jsonl")
      .send(Readable.from(finishedText(ctx.store, batch.id, type, abort.signal)));
  });

  app.get("/v1/batches/:id/events", access("tenant"), async (request, reply) => {
    const { tenantId, keyId } = request.principal;
    const id = parseId("batch", request.params);
    const first = await getBatch(ctx.store, tenantId, id);
    if (first === undefined) throw notFound("batch", id);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-request-id": request.id,
    });
    let last = "";
    let closed = false;
    let wake: (() => void) | undefined;
    const off = [
      ctx.events.on("batch.progress", (e) => e.batchId === first.id && wake?.()),
      ctx.events.on("batch.status", (e) => e.batchId === first.id && wake?.()),
    ];
    request.raw.on("close", () => {
      closed = true;
      wake?.();
    });
    let lastBeat = Date.now();
    let keyCheckedAt = Date.now();
    while (!closed) {
      if (keyId !== null && Date.now() - keyCheckedAt >= KEY_RECHECK_MS) {
        keyCheckedAt = Date.now();
        if (!(await isKeyActive(ctx.store, keyId))) break;
      }
      const row = await getBatch(ctx.store, tenantId, first.id);
      if (row === undefined) break;
      const obj = await batchView(ctx.store, row);
      const key = `${obj.status}:${obj.request_counts.completed}:${obj.request_counts.failed}:${obj.request_counts.total}`;
      if (key !== last) {
        last = key;
        res.write(`event: batch\ndata: ${JSON.stringify(obj)}\n\n`);
      } else if (Date.now() - lastBeat > 15_000) {
        res.write(": keep-alive\n\n");
        lastBeat = Date.now();
      }
      if (isTerminal(obj.status)) break;
      // At most ~4 reads a second per stream, however often progress events fire.
      await new Promise((r) => setTimeout(r, 250));
      await new Promise<void>((resolve) => {
        if (closed) return resolve();
        const timer = setTimeout(resolve, 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const f of off) f();
    res.end();
  });
}
