/** SQLite adapter: better-sqlite3 in WAL mode, one connection per process. */
import Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import { type DialectCapabilities, type SyncStatement, sqliteCapabilities } from "./dialect.js";
import type { Database as Schema } from "./schema.js";

export interface SqliteOptions {
  path: string;
}

export function openSqlite(options: SqliteOptions): { db: Kysely<Schema>; caps: DialectCapabilities } {
  const sqlite = new Database(options.path);
  sqlite.pragma("journal_mode = WAL");
  // NORMAL in WAL mode is durable against process crashes (kill -9); only an OS crash can
  // lose the last transactions. Results are checkpointed per group commit.
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("busy_timeout = 10000");
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("cache_size = -16000");
  // Deleted rows are overwritten with zeros instead of left in free space: a deleted data key
  // (crypto-shredding) must not be recoverable from the database file. The cost is writing pages
  // that a delete touches anyway.
  sqlite.pragma("secure_delete = ON");
  const cached = withStatementCache(sqlite);
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: cached }) });
  return { db, caps: sqliteCapabilities(syncTransaction(sqlite, db, cached.prepare), checkpoint(sqlite, db)) };
}

/**
 * After a shred: copies the WAL into the database file (where `secure_delete` zeroed the deleted
 * rows) and truncates the WAL, which otherwise keeps older copies of the pages, the wrapped key
 * among them, until SQLite reuses that part of it. Runs while Kysely's single connection is held,
 * so no transaction of ours is open. Only another process reading the same file (a CLI command)
 * can block it; the delete has happened by then and is not failed for it: the next shred's
 * checkpoint copies and truncates everything, this one's pages included.
 */
function checkpoint(sqlite: Database.Database, db: Kysely<Schema>): () => Promise<void> {
  return () =>
    db.connection().execute(async () => {
      sqlite.pragma("wal_checkpoint(TRUNCATE)");
    });
}

/**
 * The synchronous fast path: a better-sqlite3 transaction run while Kysely's connection is held.
 * Kysely's SQLite driver lets one caller at a time hold its single connection, so holding it means
 * no Kysely transaction is open around ours (ours would otherwise nest into it as a savepoint).
 */
function syncTransaction(
  sqlite: Database.Database,
  db: Kysely<Schema>,
  prepare: (source: string) => Database.Statement,
): NonNullable<DialectCapabilities["syncTransaction"]> {
  const statement = prepare as (source: string) => SyncStatement;
  const inTransaction = sqlite.transaction((fn: (s: typeof statement) => unknown) => fn(statement));
  return <T>(fn: (s: typeof statement) => T) =>
    db.connection().execute(async () => inTransaction(fn as (s: typeof statement) => unknown) as T);
}

const STATEMENT_CACHE_SIZE = 256;

/**
 * Kysely prepares every query anew; on the hot path (claims, checkpoints) preparing cost as much
 * as running. The same SQL text gets the same prepared statement back (LRU). Safe because
 * better-sqlite3 runs each statement to completion synchronously and Sluice never streams
 * (`iterate`) from SQLite.
 */
function withStatementCache(sqlite: Database.Database): { prepare: Database.Database["prepare"]; close(): void } {
  const cache = new Map<string, Database.Statement>();
  return {
    prepare(source: string) {
      let stmt = cache.get(source);
      if (stmt !== undefined) {
        cache.delete(source);
      } else {
        stmt = sqlite.prepare(source);
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      }
      cache.set(source, stmt);
      return stmt;
    },
    close() {
      cache.clear();
      sqlite.close();
    },
  } as { prepare: Database.Database["prepare"]; close(): void };
}
