import { describe, expect, it } from "vitest";
import type { RequestInsertRow } from "../../src/store/dialect.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import type { Store } from "../../src/store/store.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const row = (batchId: string, line: number, customId: string, body = `{"n":${line}}`): RequestInsertRow => ({
  tenant_id: "t1",
  batch_id: batchId,
  line,
  custom_id: customId,
  model: "m",
  body,
  status: "pending",
  prefix_key: null,
});

async function count(store: Store, batchId: string): Promise<number> {
  const r = await store.db
    .selectFrom("requests")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("batch_id", "=", batchId)
    .executeTakeFirstOrThrow();
  return r.n;
}

describe.each(STORES)("request ingest on $name", (kind) => {
  const t = useFreshStore(kind);

  it("inserts rows verbatim, including text that needs escaping", async () => {
    const tricky = '{"s":"tab\\there\\nnew \\\\ back","raw":"\t|\n|\r|\\\\N|é漢🙂"}';
    const out = await insertRequestChunk(t.store, [
      row("b_esc", 1, "a", tricky),
      { ...row("b_esc", 2, "b\tc\\N"), prefix_key: "p\n1" },
    ]);
    expect(out.duplicates).toEqual([]);
    const got = await t.store.db
      .selectFrom("requests")
      .select(["line", "custom_id", "body", "prefix_key", "status", "attempts", "next_attempt_ms"])
      .where("batch_id", "=", "b_esc")
      .orderBy("line")
      .execute();
    expect(got).toEqual([
      { line: 1, custom_id: "a", body: tricky, prefix_key: null, status: "pending", attempts: 0, next_attempt_ms: 0 },
      {
        line: 2,
        custom_id: "b\tc\\N",
        body: '{"n":2}',
        prefix_key: "p\n1",
        status: "pending",
        attempts: 0,
        next_attempt_ms: 0,
      },
    ]);
  });

  it("reports duplicate custom_ids within a chunk and across chunks with the first line", async () => {
    const first = await insertRequestChunk(t.store, [row("b_dup", 1, "x"), row("b_dup", 2, "y"), row("b_dup", 3, "x")]);
    expect(first.duplicates).toEqual([{ line: 3, customId: "x", firstLine: 1 }]);
    const second = await insertRequestChunk(t.store, [row("b_dup", 4, "z"), row("b_dup", 5, "y")]);
    expect(second.duplicates).toEqual([{ line: 5, customId: "y", firstLine: 2 }]);
    // Another batch may reuse the same custom_ids.
    const other = await insertRequestChunk(t.store, [row("b_dup2", 1, "x")]);
    expect(other.duplicates).toEqual([]);
    expect(await count(t.store, "b_dup")).toBe(3);
  });

  it("ingests 100k rows in chunks and counts them as a number", async () => {
    const total = 100_000;
    const chunkRows = t.store.caps.insertChunkRows;
    let duplicates = 0;
    for (let start = 1; start <= total; start += chunkRows) {
      const chunk: RequestInsertRow[] = [];
      for (let line = start; line < start + chunkRows && line <= total; line++) {
        // Every 10_000th line repeats the custom_id of the line before it.
        const id = line % 10_000 === 0 ? `req-${line - 1}` : `req-${line}`;
        chunk.push(row("b_big", line, id, `{"model":"m","messages":[{"role":"user","content":"item ${line}"}]}`));
      }
      duplicates += (await insertRequestChunk(t.store, chunk)).duplicates.length;
    }
    expect(duplicates).toBe(10);
    const n = await count(t.store, "b_big");
    expect(n).toBe(total - 10);
    expect(typeof n).toBe("number");
  });
});
