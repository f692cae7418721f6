/** Streams a batch's finished rows, in input order, as output/error file lines (bounded memory). */
import { readFinishedPage } from "../store/requests/read.js";
import type { Store } from "../store/store.js";
import { type FormattedLine, formatOutputLine } from "./output-lines.js";

const PAGE = 1000;

export async function* finishedLines(
  store: Store,
  batchId: string,
  signal?: AbortSignal,
): AsyncGenerator<FormattedLine> {
  let after = 0;
  for (;;) {
    signal?.throwIfAborted();
    const page = await readFinishedPage(store, batchId, after, PAGE);
    for (const row of page) yield formatOutputLine(batchId, row);
    const last = page[page.length - 1];
    if (last === undefined || page.length < PAGE) return;
    after = last.line;
  }
}
