/**
 * Counts requests and estimates input tokens while an upload streams by (a pass-through
 * Transform; nothing is buffered), so batch creation can enforce a tenant's limits up front.
 * A line counts when it holds a non-whitespace byte (the ingest skips blank ones); tokens are
 * estimated as ⌈bytes/4⌉ per line: a cheap, tokenizer-free upper-ish bound for JSON text.
 */
import { Transform, type TransformCallback } from "node:stream";

export interface LineStats {
  lines: number;
  tokens: number;
}

const LF = 0x0a;
const isSpace = (b: number) => b === 0x20 || b === 0x09 || b === 0x0d;

export const estimateTokens = (lineBytes: number) => Math.ceil(lineBytes / 4);

export class LineStatsCounter extends Transform {
  readonly stats: LineStats = { lines: 0, tokens: 0 };
  #lineBytes = 0;
  #content = false;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(LF, start);
      const end = nl === -1 ? chunk.length : nl;
      // Only the first bytes of a line are looked at: real lines start with `{`.
      for (let i = start; !this.#content && i < end; i++) if (!isSpace(chunk[i] as number)) this.#content = true;
      this.#lineBytes += end - start;
      if (nl === -1) break;
      this.#endLine();
      start = nl + 1;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#endLine();
    cb();
  }

  #endLine(): void {
    if (this.#content) {
      this.stats.lines++;
      this.stats.tokens += estimateTokens(this.#lineBytes);
    }
    this.#lineBytes = 0;
    this.#content = false;
  }
}
