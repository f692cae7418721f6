/** SQLite adapter: better-sqlite3 in WAL mode, one connection per process. */
import Database from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";
import type { Database as Schema } from "./schema.js";

export interface SqliteOptions {
  path: string;
}

export function openSqlite(options: SqliteOptions): Kysely<Schema> {
  const sqlite = new Database(options.path);
  sqlite.pragma("journal_mode = WAL");
  // NORMAL in WAL mode is durable against process crashes (kill -9); only an OS crash can
  // lose the last transactions. Results are checkpointed per group commit.
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("busy_timeout = 10000");
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("cache_size = -16000");
  return new Kysely<Schema>({ dialect: new SqliteDialect({ database: sqlite }) });
}
