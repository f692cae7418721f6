/**
 * Typed errors with stable codes. Every error Sluice raises on purpose is a SluiceError; the API
 * layer renders them as the OpenAI error envelope in one place (src/api/error-envelope.ts).
 */

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "conflict_error"
  | "rate_limit_error"
  | "server_error";

export interface SluiceErrorOptions {
  status?: number;
  type?: ErrorType;
  param?: string | null;
  cause?: unknown;
}

export class SluiceError extends Error {
  readonly code: string;
  readonly status: number;
  readonly type: ErrorType;
  readonly param: string | null;

  constructor(code: string, message: string, options: SluiceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SluiceError";
    this.code = code;
    this.status = options.status ?? 500;
    this.type = options.type ?? "server_error";
    this.param = options.param ?? null;
  }
}

export const invalidRequest = (message: string, param: string | null = null, code = "invalid_request") =>
  new SluiceError(code, message, { status: 400, type: "invalid_request_error", param });

export const notFound = (what: string, id: string) =>
  new SluiceError("not_found", `No ${what} found with id '${id}'.`, {
    status: 404,
    type: "not_found_error",
  });

export const conflict = (message: string, code = "invalid_state") =>
  new SluiceError(code, message, { status: 409, type: "conflict_error" });

export const unauthorized = (message = "Invalid or missing API key. Send 'Authorization: Bearer <key>'.") =>
  new SluiceError("invalid_api_key", message, { status: 401, type: "authentication_error" });

export const tooLarge = (message: string, param: string | null = null) =>
  new SluiceError("payload_too_large", message, { status: 413, type: "invalid_request_error", param });

export const unsupportedMediaType = (message: string) =>
  new SluiceError("unsupported_media_type", message, { status: 415, type: "invalid_request_error" });

export const unprocessable = (message: string, param: string | null = null, code = "unprocessable") =>
  new SluiceError(code, message, { status: 422, type: "invalid_request_error", param });

/** OpenAI's error envelope, the one shape every error takes on the wire (API, simulator, backends). */
export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function envelope(err: SluiceError): ErrorEnvelope {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}
