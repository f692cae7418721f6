/** Endpoints a batch may target, and the completion windows Sluice accepts. */
import { invalidRequest } from "../errors.js";

export const SUPPORTED_ENDPOINTS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
  "/v1/responses",
  "/v1/moderations",
] as const;
export type Endpoint = (typeof SUPPORTED_ENDPOINTS)[number];

export function isSupportedEndpoint(url: string): url is Endpoint {
  return (SUPPORTED_ENDPOINTS as readonly string[]).includes(url);
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const MAX_WINDOW_SECONDS = 30 * 86400;

/** Parses `24h`, `1h`, `7d`, `90m`, `30s` (an extension of OpenAI's fixed `24h`) into seconds. */
export function parseCompletionWindow(window: string): number {
  const m = /^(\d{1,7})([smhd])$/.exec(window);
  const unit = m?.[2];
  const seconds = m?.[1] !== undefined && unit !== undefined ? Number(m[1]) * (UNIT_SECONDS[unit] ?? 0) : 0;
  if (seconds < 1 || seconds > MAX_WINDOW_SECONDS) {
    throw invalidRequest(
      `Invalid completion_window '${window}': use a duration such as 24h, 1h, 7d or 90m (1s to 30d).`,
      "completion_window",
      "invalid_completion_window",
    );
  }
  return seconds;
}
