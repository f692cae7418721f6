/**
 * What differs between SQLite and PostgreSQL, in one place. Query code everywhere else is shared
 * Kysely; it asks this object for the few constructs that are not portable. The PostgreSQL
 * capabilities live in ./dialect-postgres.ts so that SQLite-only deployments never load `pg`.
 */
import type { SelectQueryBuilder } from "kysely";
import type { Database } from "./schema.js";

export interface DialectCapabilities {
  readonly name: "sqlite" | "postgres";
  /** Rows per ingest chunk (SQLite caps bound parameters per statement; Postgres at 65535). */
  readonly insertChunkRows: number;
  /** Make a claim's candidate sub-select safe under concurrent claimers (SKIP LOCKED on Postgres). */
  lockForClaim<O>(qb: SelectQueryBuilder<Database, "requests", O>): SelectQueryBuilder<Database, "requests", O>;
  /**
   * Optional fast path for bulk ingest (COPY on Postgres): inserts the rows whose
   * `(batch_id, custom_id)` is new, skips the others, and returns the lines it inserted. When
   * absent, ingest uses one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING line`.
   */
  bulkInsertRequests?: (rows: readonly RequestInsertRow[]) => Promise<number[]>;
}

export interface RequestInsertRow {
  tenant_id: string;
  batch_id: string;
  line: number;
  custom_id: string;
  model: string;
  body: string;
  status: "pending";
  prefix_key: string | null;
}

export const sqliteCapabilities: DialectCapabilities = {
  name: "sqlite",
  insertChunkRows: 500,
  // SQLite serializes writers, and the claim is one UPDATE … WHERE key IN (SELECT …): nothing to lock.
  lockForClaim: (qb) => qb,
};
