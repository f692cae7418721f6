/**
 * PostgreSQL adapter: one `pg` pool shared by Kysely and the COPY fast path. The pool parses
 * int8 (bigint columns, COUNT) and numeric (SUM of bigints) as JS numbers, so rows look the same
 * as SQLite's; every value Sluice stores (unix ms, token counts) is far below 2^53.
 */
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { DialectCapabilities } from "./dialect.js";
import { postgresCapabilities } from "./dialect-postgres.js";
import type { Database } from "./schema.js";

export interface PostgresOptions {
  /** `postgres://user:pass@host:port/db` */
  url: string;
  /** Connections per process (default 10). */
  poolSize?: number | undefined;
}

export const DEFAULT_POOL_SIZE = 10;

const INT8_OID = 20;
const NUMERIC_OID = 1700;

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if ((oid === INT8_OID || oid === NUMERIC_OID) && format !== "binary") return Number;
    return format === undefined ? pg.types.getTypeParser(oid) : pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

export async function openPostgres(options: PostgresOptions): Promise<{
  db: Kysely<Database>;
  caps: DialectCapabilities;
}> {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? DEFAULT_POOL_SIZE,
    types,
    application_name: "sluice",
  });
  // An idle connection that breaks (server restart, network) is dropped from the pool and the
  // next query opens a fresh one; without a listener the 'error' event would crash the process.
  pool.on("error", () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, caps: postgresCapabilities(pool) };
}
