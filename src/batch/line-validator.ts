/**
 * Validates one input line of an OpenAI batch file. Pure: uniqueness of custom_id is checked by
 * the ingest (against the store), not here.
 *
 * Messages never quote a line's values: they name the field, the expected value and at most a
 * length. Errors are stored unencrypted and returned on every GET of the batch; quoting a 2 MiB
 * `url` made each of them tens of MB (and leaked the value past encryption at rest).
 */
import { isUtf8 } from "node:buffer";

export interface ValidLine {
  ok: true;
  customId: string;
  model: string;
  /** The request body, re-serialized as compact JSON. */
  body: string;
  /** The request body as parsed (for its reuse key: batch/request-key.ts). */
  bodyValue: Record<string, unknown>;
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
/** Longer model names are refused: routing caches them, and no real model name comes close. */
export const MAX_MODEL_CHARS = 256;
/**
 * Deepest nesting of objects and arrays in a line (the line's own object is level 1). Real
 * requests, JSON schemas in tools included, stay far below; 100,000 levels made re-serializing the
 * body throw a RangeError that restarted the validation job forever.
 */
export const MAX_NESTING_DEPTH = 128;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;

/**
 * Whether the JSON text nests objects/arrays deeper than `max`, decided on the bytes before
 * parsing, without recursion. A line with at most `max` opening brackets cannot be deeper, so the
 * common case is two native `indexOf` scans; only bracket-heavy lines are walked byte by byte.
 */
export function nestsDeeperThan(bytes: Buffer, max: number): boolean {
  let opens = 0;
  for (const ch of [OPEN_BRACE, OPEN_BRACKET]) {
    for (let i = bytes.indexOf(ch); i !== -1 && opens <= max; i = bytes.indexOf(ch, i + 1)) opens++;
  }
  if (opens <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === 0x5c)
        i++; // backslash: skip the escaped byte (a quote or another backslash)
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
      if (++depth > max) return true;
    } else if (b === 0x7d || b === 0x5d) depth--;
  }
  return false;
}

export function validateLine(bytes: Buffer, endpoint: string): LineResult {
  if (!isUtf8(bytes)) return fail("invalid_utf8", "Line is not valid UTF-8.");
  if (nestsDeeperThan(bytes, MAX_NESTING_DEPTH)) {
    return fail("nesting_too_deep", `Line nests objects or arrays deeper than ${MAX_NESTING_DEPTH} levels.`);
  }
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
    return fail("invalid_method", `'method' must be "POST"${describe(line.method)}.`, "method");
  }
  if (typeof line.url !== "string") return fail("missing_url", "Missing required field 'url'.", "url");
  if (line.url !== endpoint) {
    return fail("url_mismatch", `'url' must be the batch endpoint "${endpoint}"${describe(line.url)}.`, "url");
  }
  const body = line.body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    return fail("invalid_body", "'body' must be a JSON object.", "body");
  }
  const model = (body as Record<string, unknown>).model;
  if (typeof model !== "string" || model.length === 0) {
    return fail("missing_model", "'body.model' must be a non-empty string.", "body.model");
  }
  if (model.length > MAX_MODEL_CHARS) {
    return fail("invalid_model", `'body.model' is longer than ${MAX_MODEL_CHARS} characters.`, "body.model");
  }
  if ((body as Record<string, unknown>).stream === true) {
    return fail("stream_unsupported", "'body.stream' must not be true in a batch.", "body.stream");
  }
  return {
    ok: true,
    customId,
    model,
    body: JSON.stringify(body),
    bodyValue: body as Record<string, unknown>,
  };
}

/** What was found instead of an expected value, without quoting it: its type and length. */
function describe(value: unknown): string {
  if (value === undefined || value === null) return ", got nothing";
  if (typeof value === "string") return `, got a string of ${value.length} characters`;
  return `, got ${Array.isArray(value) ? "an array" : `a ${typeof value}`}`;
}

/** Whitespace-only lines are skipped (documented): editors often leave them at the end. */
export function isBlank(bytes: Buffer): boolean {
  for (const b of bytes) {
    if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  }
  return true;
}
