import { describe, expect, it } from "vitest";
import {
  deleteFileRow,
  type FileRow,
  getFile,
  insertFile,
  listExpiredFiles,
  listFiles,
} from "../../src/store/files.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const file = (id: string, o: Partial<FileRow> = {}): FileRow => ({
  id,
  tenant_id: "t1",
  purpose: "batch",
  filename: `${id}.jsonl`,
  bytes: 100,
  created_at: 1_700_000_000,
  expires_at: null,
  status: "processed",
  blob_key: `t1/${id}`,
  line_count: null,
  token_estimate: null,
  ...o,
});

describe.each(STORES)("files on $name", (kind) => {
  const t = useFreshStore(kind);

  it("inserts and reads a file, scoped by tenant", async () => {
    const row = file("file-a", { bytes: 5_000_000_000 });
    await insertFile(t.store, row);
    expect(await getFile(t.store, "t1", "file-a")).toEqual(row);
    expect(await getFile(t.store, "t2", "file-a")).toBeUndefined();
    expect(await getFile(t.store, "t1", "file-missing")).toBeUndefined();
  });

  it("paginates by (created_at, id) in both orders, with a purpose filter", async () => {
    // Two files share a created_at so the id tie-break matters.
    const rows = [
      file("p-1", { tenant_id: "tp", created_at: 10 }),
      file("p-2", { tenant_id: "tp", created_at: 20 }),
      file("p-3", { tenant_id: "tp", created_at: 20 }),
      file("p-4", { tenant_id: "tp", created_at: 30, purpose: "batch_output" }),
      file("p-5", { tenant_id: "tp", created_at: 40 }),
    ];
    for (const r of rows) await insertFile(t.store, r);
    const ids = (xs: FileRow[]) => xs.map((x) => x.id);

    const walk = async (order: "asc" | "desc", purpose?: string) => {
      const seen: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await listFiles(t.store, { tenantId: "tp", limit: 2, order, after, purpose });
        if (page.length === 0) return seen;
        seen.push(...ids(page));
        after = page.at(-1)?.id;
      }
    };
    expect(await walk("asc")).toEqual(["p-1", "p-2", "p-3", "p-4", "p-5"]);
    expect(await walk("desc")).toEqual(["p-5", "p-4", "p-3", "p-2", "p-1"]);
    expect(await walk("desc", "batch")).toEqual(["p-5", "p-3", "p-2", "p-1"]);
    expect(ids(await listFiles(t.store, { tenantId: "other", limit: 10, order: "asc" }))).toEqual([]);
  });

  it("deletes a file once", async () => {
    await insertFile(t.store, file("file-del"));
    expect(await deleteFileRow(t.store, "t2", "file-del")).toBe(false);
    expect(await deleteFileRow(t.store, "t1", "file-del")).toBe(true);
    expect(await deleteFileRow(t.store, "t1", "file-del")).toBe(false);
  });

  it("lists expired files", async () => {
    await insertFile(t.store, file("file-old", { tenant_id: "te", expires_at: 100 }));
    await insertFile(t.store, file("file-new", { tenant_id: "te", expires_at: 10_000 }));
    const expired = await listExpiredFiles(t.store, 5_000, 10);
    expect(expired.map((f) => f.id)).toEqual(["file-old"]);
  });
});
