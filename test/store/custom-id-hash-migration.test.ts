/**
 * Migration 004 on a store that already holds rows (up to 003, as a deployed store would be):
 * rows, indexes and the claim-path partial indexes survive, the (batch_id, custom_id) constraint
 * is gone (sealed ids never repeat, so it could not catch a duplicate), and uniqueness holds on
 * (batch_id, custom_id_hash) through ingest's insert path.
 */
import Database from "better-sqlite3";
import { Kysely, type Migration, Migrator, PostgresDialect, SqliteDialect, sql } from "kysely";
import pg from "pg";
import { describe, expect, it } from "vitest";
import * as m001 from "../../src/store/migrations/001-initial.js";
import * as m002 from "../../src/store/migrations/002-security.js";
import * as m003 from "../../src/store/migrations/003-claim-ranges.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import { openStore, type StoreLocation } from "../../src/store/store.js";
import { STORES } from "../helpers/stores.js";

const UP_TO_003: Record<string, Migration> = { "001-initial": m001, "002-security": m002, "003-claim-ranges": m003 };

function rawDb(location: StoreLocation): Kysely<unknown> {
  return location.kind === "sqlite"
    ? new Kysely({ dialect: new SqliteDialect({ database: new Database(location.path) }) })
    : new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: location.url, max: 1 }) }) });
}

describe.each(STORES)("migration 004 on $name", (kind) => {
  it("moves custom_id uniqueness to custom_id_hash and keeps existing rows", async () => {
    const database = await kind.createDatabase();
    try {
      const old = rawDb(database.location);
      const migrated = await new Migrator({
        db: old,
        provider: { getMigrations: async () => UP_TO_003 },
      }).migrateToLatest();
      expect(migrated.error).toBeUndefined();
      await sql`INSERT INTO requests (tenant_id, batch_id, line, custom_id, model, body, status)
        VALUES ('t', 'b_old', 1, 'same', 'm', '{}', 'pending'), ('t', 'b_old', 2, 'other', 'm', '{}', 'succeeded')`.execute(
        old,
      );
      await old.destroy();

      const store = await openStore(database.location);
      try {
        const rows = await store.db
          .selectFrom("requests")
          .select(["line", "custom_id", "custom_id_hash", "status"])
          .orderBy("line")
          .execute();
        expect(rows).toEqual([
          { line: 1, custom_id: "same", custom_id_hash: null, status: "pending" },
          { line: 2, custom_id: "other", custom_id_hash: null, status: "succeeded" },
        ]);
        // Equal custom_ids with different hashes (sealed ids look like this): no constraint on the id.
        const row = (line: number, customId: string, hash: string) => ({
          tenant_id: "t",
          batch_id: "b_new",
          line,
          custom_id: customId,
          custom_id_hash: hash,
          model: "m",
          body: "{}",
          status: "pending" as const,
          prefix_key: null,
        });
        const first = await insertRequestChunk(store, [row(1, "x", "h1"), row(2, "x", "h2"), row(3, "y", "h1")]);
        expect(first.duplicates.map((d) => [d.line, d.firstLine])).toEqual([[3, 1]]);
        const second = await insertRequestChunk(store, [row(4, "z", "h2")]);
        expect(second.duplicates.map((d) => [d.line, d.firstLine])).toEqual([[4, 2]]);
        // The claim path's partial index survived the SQLite rebuild.
        if (kind.name === "sqlite") {
          const indexes = await sql<{ name: string }>`SELECT name FROM sqlite_master
            WHERE type = 'index' AND tbl_name = 'requests' AND sql IS NOT NULL ORDER BY name`.execute(store.db);
          expect(indexes.rows.map((r) => r.name)).toEqual([
            "requests_custom_id_hash",
            "requests_merged",
            "requests_pending",
            "requests_resubmit_key",
            "requests_reuse_key",
            "requests_running",
          ]);
        }
      } finally {
        await store.close();
      }
    } finally {
      await database.drop();
    }
  });
});
