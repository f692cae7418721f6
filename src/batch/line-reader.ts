/**
 * Splits a byte stream into numbered lines without ever holding more than one line (bounded by
 * `maxLineBytes`) in memory. Rules, documented in the README:
 * - lines end with LF; a CR before the LF is dropped (CRLF files work);
 * - a UTF-8 BOM at the very start is ignored;
 * - the last line needs no final newline;
 * - line numbers are 1-based and count every physical line, blank ones included.
 */

export type RawLine = { line: number; kind: "text"; bytes: Buffer } | { line: number; kind: "oversized"; size: number };

const LF = 0x0a;
const CR = 0x0d;

export async function* readLines(
  source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  maxLineBytes: number,
): AsyncGenerator<RawLine> {
  let parts: Buffer[] = [];
  let partBytes = 0;
  let oversized = false;
  let overSize = 0;
  let line = 0;
  let first = true;

  const finish = (tail: Buffer): RawLine => {
    line++;
    if (oversized) {
      const size = overSize + tail.length;
      oversized = false;
      overSize = 0;
      return { line, kind: "oversized", size };
    }
    let bytes = parts.length === 0 ? tail : Buffer.concat([...parts, tail]);
    parts = [];
    partBytes = 0;
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, bytes.length - 1);
    if (bytes.length > maxLineBytes) return { line, kind: "oversized", size: bytes.length };
    return { line, kind: "text", bytes };
  };

  for await (const chunk of source) {
    let buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    if (first && buf.length > 0) {
      first = false;
      if (buf.length >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) buf = buf.subarray(3);
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(LF, start);
      if (nl === -1) break;
      yield finish(buf.subarray(start, nl));
      start = nl + 1;
    }
    const rest = buf.subarray(start);
    if (rest.length === 0) continue;
    if (oversized) {
      overSize += rest.length;
    } else if (partBytes + rest.length > maxLineBytes + 1) {
      // Too long already: stop keeping bytes, just count them until the next newline.
      oversized = true;
      overSize = partBytes + rest.length;
      parts = [];
      partBytes = 0;
    } else {
      // Copy: the source may reuse its chunk buffers.
      parts.push(Buffer.from(rest));
      partBytes += rest.length;
    }
  }
  if (oversized || partBytes > 0) yield finish(Buffer.alloc(0));
}
