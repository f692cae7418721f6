/**
 * What differs between SQLite and PostgreSQL, in one place. Query code everywhere else is shared
 * Kysely; it asks this object for the few constructs that are not portable. The PostgreSQL
 * capabilities live in ./dialect-postgres.ts so that SQLite-only deployments never load `pg`.
 */
import type { SelectQueryBuilder } from "kysely";
import type { BatchLease } from "./batch-lease.js";
import type { ClaimSource, ClaimSourceOptions } from "./claims/claim-source.js";
import { HeldClaims } from "./claims/held-claims.js";
import type { Database } from "./schema.js";
import type { Store } from "./store.js";

export interface DialectCapabilities {
  readonly name: "sqlite" | "postgres";
  /**
   * The claim source a worker uses on this store (claims/claim-source.ts): held claims where one
   * process owns the store (SQLite), leased rows where many workers share it (PostgreSQL). The one
   * place the claim mode is chosen.
   */
  createClaimSource(store: Store, options: ClaimSourceOptions): ClaimSource;
  /** Rows per ingest chunk (SQLite caps bound parameters per statement; Postgres at 65535). */
  readonly insertChunkRows: number;
  /** Make a claim's candidate sub-select safe under concurrent claimers (SKIP LOCKED on Postgres). */
  lockForClaim<O>(qb: SelectQueryBuilder<Database, "requests", O>): SelectQueryBuilder<Database, "requests", O>;
  /**
   * Optional fast path for bulk ingest (COPY on Postgres): inserts the rows whose
   * `(batch_id, custom_id_hash)` is new, skips the others, and returns the lines it inserted. When
   * absent, ingest uses one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING line`.
   */
  bulkInsertRequests?: (rows: readonly RequestInsertRow[], lease?: BatchLease) => Promise<number[]>;
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
  /** The uniqueness key of custom_id (FieldCipher `customIdHash`); absent: custom_id itself. */
  custom_id_hash?: string;
  model: string;
  body: string;
  status: "pending";
  prefix_key: string | null;
  /** batch/request-key.ts; absent on rows of callers that do not compute them. */
  reuse_key?: string | null;
  resubmit_key?: string | null;
  /** The reuse key when the line may merge with identical lines of its batch (store/requests/dedup.ts). */
  dedup_key?: string | null;
}

export function sqliteCapabilities(
  syncTransaction: NonNullable<DialectCapabilities["syncTransaction"]>,
  afterShred: DialectCapabilities["afterShred"],
): DialectCapabilities {
  return {
    afterShred,
    name: "sqlite",
    // One process owns the store: claims are held in memory, rows stay pending until their verdict.
    createClaimSource: (store, options) => new HeldClaims(store, options),
    insertChunkRows: 500,
    // SQLite serializes writers, and the claim is one UPDATE … WHERE key IN (SELECT …): nothing to lock.
    lockForClaim: (qb) => qb,
    syncTransaction,
  };
}
