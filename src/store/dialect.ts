/**
 * What differs between SQLite and PostgreSQL, in one place. Query code everywhere else is shared
 * Kysely; it asks this object for the few constructs that are not portable. The PostgreSQL
 * capabilities live in ./dialect-postgres.ts so that SQLite-only deployments never load `pg`.
 */
import type { SelectQueryBuilder } from "kysely";
import type { Database } from "./schema.js";

export interface DialectCapabilities {
  readonly name: "sqlite" | "postgres";
  /**
   * Whether one process owns the store (SQLite), so that the dispatcher keeps its claims in memory
   * and rows stay pending until their verdict (claim.ts `readClaimable`). PostgreSQL leases rows.
   */
  readonly inMemoryClaims: boolean;
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
  /**
   * Optional synchronous fast path (SQLite, in-process): runs `fn` as one transaction on the
   * store's connection while no other query holds it, with statements prepared once per SQL text.
   * Claims and checkpoints use it when present; through Kysely, each statement cost an async round
   * that an in-process driver does not need (~5 µs a row of the ~16 that claim + verdict took).
   */
  syncTransaction?: <T>(fn: (statement: (sql: string) => SyncStatement) => T) => Promise<T>;
  /**
   * Run after data keys were deleted (crypto-shredding), so that the deleted rows are gone from
   * what the store keeps on disk as far as the engine allows. SQLite: deleted content is zeroed
   * (`secure_delete`) and the WAL checkpointed and truncated. PostgreSQL: VACUUM of `data_keys`.
   * See docs/security.md for what each one guarantees.
   */
  afterShred(): Promise<void>;
}

/** A prepared statement of the synchronous fast path, positional parameters only. */
export interface SyncStatement {
  run(...params: unknown[]): { changes: number };
  all(...params: unknown[]): unknown[];
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

export function sqliteCapabilities(
  syncTransaction: NonNullable<DialectCapabilities["syncTransaction"]>,
  afterShred: DialectCapabilities["afterShred"],
): DialectCapabilities {
  return {
    afterShred,
    name: "sqlite",
    inMemoryClaims: true,
    insertChunkRows: 500,
    // SQLite serializes writers, and the claim is one UPDATE … WHERE key IN (SELECT …): nothing to lock.
    lockForClaim: (qb) => qb,
    syncTransaction,
  };
}
