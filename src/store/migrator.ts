/** Numbered migrations, applied in order on start. Kysely's migrator takes a lock while it runs. */
import { type Kysely, type Migration, type MigrationProvider, Migrator } from "kysely";
import { SluiceError } from "../errors.js";
import * as m001 from "./migrations/001-initial.js";
import * as m002 from "./migrations/002-security.js";
import * as m003 from "./migrations/003-claim-ranges.js";
import * as m004 from "./migrations/004-custom-id-hash.js";
import * as m005 from "./migrations/005-backend-outages.js";
import * as m006 from "./migrations/006-reuse.js";
import * as m007 from "./migrations/007-dedup.js";

const migrations: Record<string, Migration> = {
  "001-initial": m001,
  "002-security": m002,
  "003-claim-ranges": m003,
  "004-custom-id-hash": m004,
  "005-backend-outages": m005,
  "006-reuse": m006,
  "007-dedup": m007,
};

class StaticProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

export async function migrateToLatest(db: Kysely<unknown>): Promise<void> {
  const migrator = new Migrator({ db, provider: new StaticProvider() });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === "Error");
  if (error !== undefined) {
    throw new SluiceError("migration_failed", `Migration ${failed?.migrationName ?? ""} failed`, { cause: error });
  }
}
