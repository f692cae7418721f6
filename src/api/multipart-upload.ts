/**
 * Reads `POST /v1/files`'s multipart body: the one `file` part streamed to the blob store (lines
 * and tokens counted on the way), the form fields collected. Every way the body can go wrong ends
 * in a typed error and a finished blob write, never a request left hanging:
 * - limits are checked here, one part before @fastify/multipart's own (set one higher), because the
 *   plugin reports its limits only after the parts already queued, and a file part queued behind a
 *   limit arrives already destroyed: piping it would wait forever on an open temporary file;
 * - the blob write is aborted when the client goes away;
 * - parser errors are the client's (400, a fixed message), blob store errors the server's (500,
 *   logged by the error handler with their cause, never shown to the client).
 */
import { finished } from "node:stream";
import type { Multipart } from "@fastify/multipart";
import type { FastifyRequest } from "fastify";
import { LineStatsCounter } from "../batch/line-stats.js";
import type { AppContext } from "../context.js";
import { invalidRequest, SluiceError, tooLarge } from "../errors.js";

export interface UploadedFile {
  /** As the client sent it: the caller reduces it to a safe name. */
  filename: string | undefined;
  bytes: number;
  lines: number;
  tokens: number;
}

export interface UploadOptions {
  blobKey: string;
  maxFileBytes: number;
}

const FIELD_BYTES = 4096;

const tooManyFields = (max: number) =>
  new SluiceError("too_many_fields", `Too many form fields: at most ${max} besides 'file'.`, {
    status: 413,
    type: "invalid_request_error",
  });

/** Busboy's messages are fixed strings, but only known ones are passed on: no user data quoted. */
const PARSER_REASONS = [
  "Unexpected end of form",
  "Unexpected end of multipart data",
  "Malformed part header",
  "Part terminated early",
  "Multipart: Boundary not found",
];

const malformed = (reason?: string) =>
  invalidRequest(`Malformed multipart body${reason === undefined ? "" : `: ${reason}`}.`, null, "malformed_multipart");

const interrupted = () =>
  invalidRequest("The upload ended before the 'file' part was complete.", "file", "upload_interrupted");

/** Maps what the multipart parser rejects with onto the client's 4xx. */
function parserError(err: unknown, options: UploadOptions, maxFields: number): SluiceError {
  if (err instanceof SluiceError) return err;
  const { code, message } = err as { code?: string; message?: string };
  if (code === "FST_REQ_FILE_TOO_LARGE")
    return tooLarge(`File exceeds the ${options.maxFileBytes}-byte limit.`, "file");
  if (code === "FST_FILES_LIMIT") return tooLarge("Only one file part is accepted.", "file");
  if (code === "FST_FIELDS_LIMIT" || code === "FST_PARTS_LIMIT") return tooManyFields(maxFields);
  if (code === "FST_PROTO_VIOLATION") return invalidRequest("Form field names may not be reserved names.");
  if (code === "ECONNRESET") return interrupted(); // the client hung up: nobody reads this answer
  return malformed(PARSER_REASONS.find((r) => r === message));
}

/**
 * Wraps what went wrong on the client's side of a file part (a parser error, a premature end), so
 * it stays recognizable after passing through the blob store: whatever else a put rejects with is
 * the store's failure.
 */
class BodyFailure extends Error {
  constructor(cause: unknown) {
    super("The upload body failed", { cause });
  }
}

function isBodyFailure(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted || err instanceof BodyFailure || (err as { code?: string }).code === "blob_body_closed";
}

export async function receiveUpload(
  request: FastifyRequest,
  ctx: AppContext,
  options: UploadOptions,
): Promise<{ upload: UploadedFile | undefined; fields: Record<string, string> }> {
  const maxFields = ctx.limits.maxFormFields;
  const fields: Record<string, string> = {};
  let fieldCount = 0;
  let upload: UploadedFile | undefined;
  let sawFile = false;
  // Aborted when the connection closes before the whole body arrived (hang-up, body timeout).
  const gone = new AbortController();
  const onClose = () => {
    if (!request.raw.complete) gone.abort(interrupted());
  };
  request.raw.once("close", onClose);
  const parts = request
    .parts({
      limits: {
        fileSize: options.maxFileBytes,
        files: 2,
        fields: maxFields + 1,
        fieldSize: FIELD_BYTES,
        parts: maxFields + 3,
      },
    })
    [Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<Multipart>;
      try {
        next = await parts.next();
      } catch (err) {
        throw parserError(err, options, maxFields);
      }
      if (next.done) break;
      const part = next.value;
      if (part.type === "field") {
        if (++fieldCount > maxFields) throw tooManyFields(maxFields);
        fields[part.fieldname] = String(part.value);
        continue;
      }
      if (sawFile) {
        part.file.resume();
        throw tooLarge("Only one file part is accepted.", "file");
      }
      sawFile = true;
      if (part.fieldname !== "file") {
        part.file.resume();
        throw invalidRequest(`Unexpected file part '${part.fieldname}'; send the file as 'file'.`, part.fieldname);
      }
      // The parser gave up on this part (its reason, if any, is the next value): never pipe it.
      if (part.file.destroyed) continue;
      upload = await storeFile(part, ctx, options, gone.signal);
    }
    if (sawFile && upload === undefined) throw interrupted();
    return { upload, fields };
  } finally {
    request.raw.off("close", onClose);
  }
}

async function storeFile(
  part: Extract<Multipart, { type: "file" }>,
  ctx: AppContext,
  options: UploadOptions,
  signal: AbortSignal,
): Promise<UploadedFile> {
  // Lines and tokens are counted on the way to the blob store, for the limits at batch creation.
  const counter = new LineStatsCounter();
  // Not pipeline(): it would destroy the part with the store's error, and the two would look alike.
  part.file.pipe(counter);
  finished(part.file, (err) => {
    if (err) counter.destroy(new BodyFailure(err));
  });
  // The store gave up: let the parser run to the end of the body without us.
  counter.once("error", (err) => {
    if (err instanceof BodyFailure) return;
    part.file.unpipe(counter);
    part.file.resume();
  });
  let bytes: number;
  try {
    ({ bytes } = await ctx.blobs.put(options.blobKey, counter, { signal }));
  } catch (err) {
    if (!isBodyFailure(err, signal)) throw err; // storage: a 500, logged with its cause
    throw signal.aborted ? (signal.reason as SluiceError) : interrupted();
  }
  if (part.file.truncated) throw tooLarge(`File exceeds the ${options.maxFileBytes}-byte limit.`, "file");
  return { filename: part.filename, bytes, ...counter.stats };
}
