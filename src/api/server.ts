/**
 * Builds the HTTP API (Fastify). Fastify was chosen because @fastify/multipart hands each part
 * over as a stream (uploads go straight to the blob store), it has schema-free raw stream replies
 * for downloads, and its error handler lets one function render every error envelope.
 */
import multipart from "@fastify/multipart";
import Fastify, { type FastifyInstance } from "fastify";
import type { MetricsAuth } from "../config.js";
import type { AppContext } from "../context.js";
import { newRequestId } from "../ids.js";
import { installAccessLog } from "./access-log.js";
import { registerAdminRoutes } from "./admin-routes.js";
import { access, installAuth } from "./auth.js";
import { registerBatchStreamRoutes } from "./batch-stream-routes.js";
import { registerBatchRoutes } from "./batches-routes.js";
import { installBodyTimeout } from "./body-timeout.js";
import { installErrorHandling, renderFrameworkError } from "./error-envelope.js";
import { registerFileRoutes } from "./files-routes.js";
import { metricsRoutes } from "./metrics-routes.js";
import { installRateLimit } from "./rate-limit.js";

export interface ApiOptions {
  envKey: string | undefined;
  /** Who may read /metrics (default: admin keys only). */
  metricsAuth?: MetricsAuth;
  /** Extra route groups, registered after the API's own (each route declares its access). */
  extraRoutes?: ((app: FastifyInstance, ctx: AppContext) => void)[];
  https?: { cert: Buffer; key: Buffer } | undefined;
}

export async function buildApi(ctx: AppContext, options: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: ctx.limits.maxJsonBodyBytes,
    genReqId: () => newRequestId(),
    return503OnClosing: true,
    // Ids are at most 128 characters; longer path segments are answered by renderFrameworkError.
    routerOptions: { maxParamLength: 256 },
    frameworkErrors: renderFrameworkError,
    ...(options.https ? { https: options.https } : {}),
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  app.addHook("onRequest", async (request, reply) => {
    void reply.header("x-request-id", request.id);
    void reply.header("x-content-type-options", "nosniff");
  });
  installAccessLog(app, ctx.logger);
  installErrorHandling(app, ctx.logger);
  installBodyTimeout(app, ctx);
  // JSON routes take JSON only: a text/plain body is a 415, not a string handed to the schema.
  app.removeContentTypeParser("text/plain");
  await app.register(multipart, { limits: { fileSize: ctx.limits.maxFileBytes, files: 1 } });
  installAuth(app, { store: ctx.store, envKey: options.envKey });
  installRateLimit(app, { perSecond: ctx.limits.rateLimitPerSecond, burst: ctx.limits.rateLimitBurst });

  app.get("/health", access("public"), async () => ({ status: "ok" }));
  registerFileRoutes(app, ctx);
  registerBatchRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerBatchStreamRoutes(app, ctx);
  metricsRoutes(options.metricsAuth ?? "admin")(app, ctx);
  for (const register of options.extraRoutes ?? []) register(app, ctx);
  return app;
}
