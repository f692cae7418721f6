/**
 * Validates one input line of an OpenAI batch file. Pure: uniqueness of custom_id is checked by
 * the ingest (against the store), not here.
 */
import { isUtf8 } from "node:buffer";

export interface ValidLine {
  ok: true;
  customId: string;
  model: string;
  /** The request body, re-serialized as compact JSON. */
  body: string;
}

export interface LineError {
  ok: false;
  code: string;
  message: string;
  param: string | null;
}

export type LineResult = ValidLine | LineError;

const fail = (code: string, message: string, param: string | null = null): LineError => ({
  ok: false,
  code,
  message,
  param,
});

const MAX_CUSTOM_ID_CHARS = 512;

export function validateLine(bytes: Buffer, endpoint: string): LineResult {
  if (!isUtf8(bytes)) return fail("invalid_utf8", "Line is not valid UTF-8.");
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    // V8's message quotes the line's text; errors are stored unencrypted, so keep only the position.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    return fail("invalid_json_line", `Line is not valid JSON${at === undefined ? "" : ` (at character ${at})`}.`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return fail("invalid_json_line", "Line must be a JSON object.");
  }
  const line = parsed as Record<string, unknown>;
  const customId = line.custom_id;
  if (customId === undefined || customId === null) {
    return fail("missing_custom_id", "Missing required field 'custom_id'.", "custom_id");
  }
  if (typeof customId !== "string" || customId.length === 0) {
    return fail("invalid_custom_id", "'custom_id' must be a non-empty string.", "custom_id");
  }
  if (customId.length > MAX_CUSTOM_ID_CHARS) {
    return fail("invalid_custom_id", `'custom_id' is longer than ${MAX_CUSTOM_ID_CHARS} characters.`, "custom_id");
  }
  if (line.method !== "POST") {
    return fail("invalid_method", `'method' must be "POST", got ${JSON.stringify(line.method ?? null)}.`, "method");
  }
  if (typeof line.url !== "string") return fail("missing_url", "Missing required field 'url'.", "url");
  if (line.url !== endpoint) {
    return fail(
      "url_mismatch",
      `'url' ${JSON.stringify(line.url)} does not match the batch endpoint "${endpoint}".`,
      "url",
    );
  }
  const body = line.body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return fail("invalid_body", "'body' must be a JSON object.", "body");
  }
  const model = (body as Record<string, unknown>).model;
  if (typeof model !== "string" || model.length === 0) {
    return fail("missing_model", "'body.model' must be a non-empty string.", "body.model");
  }
  if ((body as Record<string, unknown>).stream === true) {
    return fail("stream_unsupported", "'body.stream' must not be true in a batch.", "body.stream");
  }
  return { ok: true, customId, model, body: JSON.stringify(body) };
}

/** Whitespace-only lines are skipped (documented): editors often leave them at the end. */
export function isBlank(bytes: Buffer): boolean {
  for (const b of bytes) {
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  }
  return true;
}
