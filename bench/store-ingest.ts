/**
 * Ingest throughput on PostgreSQL: COPY through a staging table vs multi-row INSERT, 100k rows.
 * Usage: node --import tsx bench/store-ingest.ts [rows] (admin URL from SLUICE_TEST_PG_URL).
 */
import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import pg from "pg";
import type { RequestInsertRow } from "../src/store/dialect.js";
import { insertRequestChunk } from "../src/store/requests/insert.js";
import { openStore, type Store } from "../src/store/store.js";

const ADMIN_URL = process.env["SLUICE_TEST_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";
const ROWS = Number(process.argv[2] ?? 100_000);

function rowsFor(batchId: string, n: number): RequestInsertRow[] {
  return Array.from({ length: n }, (_, i) => ({
    tenant_id: "default",
    batch_id: batchId,
    line: i + 1,
    custom_id: `request-${i + 1}`,
    model: "gpt-4o-mini",
    body: JSON.stringify({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `Summarize item ${i}:\n\t"${randomBytes(48).toString("base64")}"` }],
      max_tokens: 256,
    }),
    status: "pending",
    prefix_key: null,
  }));
}

async function ingest(store: Store, rows: RequestInsertRow[], chunk: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < rows.length; i += chunk) await insertRequestChunk(store, rows.slice(i, i + chunk));
  return performance.now() - t0;
}

const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
const dbName = `sluice_bench_${randomBytes(4).toString("hex")}`;
await admin.query(`CREATE DATABASE ${dbName}`);
const url = new URL(ADMIN_URL);
url.pathname = `/${dbName}`;
try {
  const store = await openStore({ kind: "postgres", url: url.toString() });
  const copyCaps = store.caps;
  const { bulkInsertRequests: _copy, ...insertCaps } = copyCaps;
  const variants: [string, Store][] = [
    ["COPY", store],
    ["INSERT", { ...store, caps: insertCaps }],
  ];
  for (const chunk of [2000, 5000, 8000]) {
    for (let round = 0; round < 3; round++) {
      for (const [name, s] of variants) {
        const batchId = `b_${name}_${chunk}_${round}`;
        const ms = await ingest(s, rowsFor(batchId, ROWS), chunk);
        console.log(
          `${name.padEnd(6)} chunk=${chunk} rows=${ROWS} ${ms.toFixed(0)} ms (${((ROWS / ms) * 1000).toFixed(0)} rows/s)`,
        );
        await sql`TRUNCATE requests`.execute(store.db);
      }
    }
  }
  await store.close();
} finally {
  await admin.query(`DROP DATABASE ${dbName} WITH (FORCE)`);
  await admin.end();
}
