/**
 * The access log: one debug line per answered request, with its method, route pattern, path
 * (never the query string), status, duration and, once authenticated, the tenant. Never headers,
 * keys or bodies.
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "../logger.js";

export function installAccessLog(app: FastifyInstance, logger: Logger): void {
  app.addHook("onResponse", async (request, reply) => {
    const path = request.url.split("?", 1)[0] ?? "";
    logger.debug("request", {
      requestId: request.id,
      method: request.method,
      route: request.routeOptions.url ?? null,
      path: path.length > 512 ? `${path.slice(0, 512)}…` : path,
      status: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10,
      tenantId: request.principal?.tenantId ?? null,
    });
  });
}
