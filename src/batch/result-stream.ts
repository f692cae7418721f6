/**
 * Streams a batch's finished rows, in input order, as output/error file lines (bounded memory: a
 * page of rows at a time). Consumers write a page's lines as one string: a write per line cost
 * more than reading and formatting the row (bench/pipeline-overhead.ts, finalize phase).
 */
import { createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { readFinishedPage } from "../store/requests/read.js";
import type { Store } from "../store/store.js";
import { type FormattedLine, formatOutputLine } from "./output-lines.js";

const PAGE = 1000;

/** The finished rows' lines, a page (up to 1,000 lines, in input order) at a time. */
export async function* finishedPages(
  store: Store,
  batchId: string,
  signal?: AbortSignal,
): AsyncGenerator<FormattedLine[]> {
  let after = 0;
  for (;;) {
    signal?.throwIfAborted();
    const page = await readFinishedPage(store, batchId, after, PAGE);
    if (page.length > 0) yield page.map((row) => formatOutputLine(batchId, row));
    const last = page[page.length - 1];
    if (last === undefined || page.length < PAGE) return;
    after = last.line;
  }
}

/** A page's lines for one target ("all": both, in input order) as one string. */
export function joinLines(page: readonly FormattedLine[], target: FormattedLine["target"] | "all"): string {
  let text = "";
  for (const l of page) if (target === "all" || l.target === target) text += l.text;
  return text;
}

/** The finished lines of `target`, a page per chunk (for HTTP responses and files). */
export async function* finishedText(
  store: Store,
  batchId: string,
  target: FormattedLine["target"] | "all",
  signal?: AbortSignal,
): AsyncGenerator<string> {
  for await (const page of finishedPages(store, batchId, signal)) {
    const text = joinLines(page, target);
    if (text.length > 0) yield text;
  }
}

/** Writes every finished line (successes and errors, in input order) to a local file. */
export async function writeFinishedFile(store: Store, batchId: string, path: string): Promise<void> {
  await pipeline(Readable.from(finishedText(store, batchId, "all")), createWriteStream(path));
}
