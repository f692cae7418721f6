/** Renders every error as OpenAI's envelope `{"error":{message,type,param,code}}`, in one place. */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { envelope, SluiceError } from "../errors.js";
import type { Logger } from "../logger.js";
import { LimitError } from "../tenancy/limit-error.js";

export { type ErrorEnvelope, envelope } from "../errors.js";

/** Maps framework and parser errors onto SluiceErrors with the right status. */
export function toSluiceError(err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  const fe = err as Partial<FastifyError> & { code?: string };
  const code = fe.code ?? "";
  const message = fe.message ?? "Internal server error";
  if (code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" || code === "FST_INVALID_MULTIPART_CONTENT_TYPE") {
    return new SluiceError("unsupported_media_type", message, { status: 415, type: "invalid_request_error" });
  }
  if (
    code === "FST_ERR_CTP_BODY_TOO_LARGE" ||
    code === "FST_REQ_FILE_TOO_LARGE" ||
    code === "FST_FILES_LIMIT" ||
    code === "FST_PARTS_LIMIT" ||
    code === "FST_FIELDS_LIMIT"
  ) {
    return new SluiceError("payload_too_large", message, { status: 413, type: "invalid_request_error" });
  }
  if (code === "FST_ERR_CTP_INVALID_JSON_BODY" || code === "FST_ERR_CTP_EMPTY_JSON_BODY" || fe.statusCode === 400) {
    return new SluiceError("invalid_request", message, { status: 400, type: "invalid_request_error" });
  }
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new SluiceError("invalid_request", message, { status: fe.statusCode, type: "invalid_request_error" });
  }
  return new SluiceError("server_error", "Internal server error", { status: 500, type: "server_error", cause: err });
}

/**
 * Errors the router raises before any hook runs (a malformed URL, a path segment longer than any
 * id): the first can never be a route, the second names an object that cannot exist (404).
 */
export function renderFrameworkError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const e =
    err.code === "FST_ERR_MAX_PARAM_LENGTH"
      ? new SluiceError("not_found", "No object found with that id.", { status: 404, type: "not_found_error" })
      : new SluiceError("invalid_url", "Malformed request URL.", { status: 400, type: "invalid_request_error" });
  void reply.status(e.status).header("x-request-id", request.id).type("application/json").send(envelope(e));
}

export function installErrorHandling(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((err, request, reply) => {
    const e = toSluiceError(err);
    if (e.status >= 500)
      logger.error("request failed", { requestId: request.id, url: request.url, error: err as Error });
    if (e instanceof LimitError) void reply.headers(e.headers);
    void reply.status(e.status).type("application/json").send(envelope(e));
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send(
      envelope(
        new SluiceError("unknown_url", `Unknown request URL: ${request.method} ${request.url.split("?")[0]}`, {
          status: 404,
          type: "invalid_request_error",
        }),
      ),
    );
  });
}
