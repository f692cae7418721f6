/**
 * `s3://bucket/key` batch inputs (an extension) and the operator's allowed prefixes
 * (SLUICE_S3_INPUT_PREFIXES). URLs and prefixes are parsed into a bucket and key segments and
 * compared segment by segment: a string comparison let `s3://b/allowed/../../other/key` through
 * (S3-compatible servers may resolve dot segments) and let prefix `s3://b/batches` admit
 * `s3://b/batches-other/x`. Anything ambiguous is refused rather than normalised: dot segments
 * (plain or percent-encoded), empty segments, backslashes and control characters.
 *
 * A prefix segment `{tenant}` stands for the requesting tenant's name, so one shared bucket can
 * give each tenant its own folder (`s3://inputs/{tenant}` admits `s3://inputs/acme/…` to acme only).
 */

export interface InputUrl {
  bucket: string;
  /** The key's `/`-separated segments, none empty, none a dot segment. */
  segments: string[];
}

export const TENANT_PLACEHOLDER = "{tenant}";

/** S3's bucket naming rules (lowercase letters, digits, dots, hyphens; 3–63 characters). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** S3 keys are at most 1,024 bytes of UTF-8. */
const MAX_KEY_BYTES = 1024;
const FORBIDDEN = /[\\\u0000-\u001f\u007f]/;

/** Why a URL or prefix was refused, without quoting it (it may be long or hold anything). */
export class InputUrlError extends Error {
  override readonly name = "InputUrlError";
}

function decodedOrRaw(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function checkSegment(segment: string): void {
  if (segment === "") throw new InputUrlError("empty path segment");
  if (FORBIDDEN.test(segment)) throw new InputUrlError("backslash or control character");
  // Decoded as a server that un-escapes keys would see it: `%2e%2e` is `..`, `%2f` a separator.
  const decoded = decodedOrRaw(segment);
  if (decoded === "." || decoded === "..") throw new InputUrlError("dot segment");
  if (decoded !== segment && (decoded.includes("/") || FORBIDDEN.test(decoded))) {
    throw new InputUrlError("percent-encoded separator or control character");
  }
}

/**
 * Parses `s3://bucket/key`. With `prefix`, the key may be empty and a trailing `/` is allowed
 * (operators write `s3://b/inputs/`); a URL naming an object needs a non-empty key.
 */
export function parseS3Location(url: string, options: { prefix?: boolean } = {}): InputUrl {
  if (!url.startsWith("s3://")) throw new InputUrlError("not an s3:// URL");
  const rest = url.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  if (!BUCKET.test(bucket)) throw new InputUrlError("invalid bucket name");
  let key = slash === -1 ? "" : rest.slice(slash + 1);
  if (options.prefix === true && key.endsWith("/")) key = key.slice(0, -1);
  if (key === "") {
    if (options.prefix === true) return { bucket, segments: [] };
    throw new InputUrlError("no object key");
  }
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new InputUrlError("key longer than 1024 bytes");
  const segments = key.split("/");
  for (const s of segments) checkSegment(s);
  return { bucket, segments };
}

/** The prefixes of SLUICE_S3_INPUT_PREFIXES, checked at startup: a bad entry is an error, not ignored. */
export function parseInputPrefixes(raw: string | undefined): string[] {
  const prefixes = (raw ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p !== "");
  prefixes.forEach((p, i) => {
    try {
      parseS3Location(p, { prefix: true });
    } catch (err) {
      // The entry's position, not its text: configuration errors never echo values.
      throw new Error(
        `SLUICE_S3_INPUT_PREFIXES entry ${i + 1} is not a valid s3://bucket/prefix (${(err as Error).message})`,
      );
    }
  });
  return prefixes;
}

/**
 * Whether `url` names an object strictly under one of `prefixes` for this tenant. Throws
 * InputUrlError when the URL itself is malformed; returns false when it is well-formed but outside.
 */
export function inputUrlAllowed(url: string, prefixes: readonly string[], tenantName: string): boolean {
  const target = parseS3Location(url);
  return prefixes.some((p) => {
    let prefix: InputUrl;
    try {
      prefix = parseS3Location(p, { prefix: true });
    } catch {
      return false; // resolveLimits refuses these at startup; a hand-built Limits may not have
    }
    if (prefix.bucket !== target.bucket || target.segments.length <= prefix.segments.length) return false;
    return prefix.segments.every((seg, i) => (seg === TENANT_PLACEHOLDER ? tenantName : seg) === target.segments[i]);
  });
}
