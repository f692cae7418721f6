/** A 4xx that also sets response headers (retry-after on rate limits; x-should-retry on quotas). */
import { type ErrorType, SluiceError } from "../errors.js";

export class LimitError extends SluiceError {
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: string,
    message: string,
    options: { status: number; type?: ErrorType; param?: string | null; headers?: Record<string, string> },
  ) {
    super(code, message, {
      status: options.status,
      type: options.type ?? (options.status === 429 ? "rate_limit_error" : "invalid_request_error"),
      param: options.param ?? null,
    });
    this.name = "LimitError";
    this.headers = options.headers ?? {};
  }
}
