/**
 * The store suite runs on every dialect: `describe.each(STORES)` and `useFreshStore(kind)` give
 * each describe block its own empty database (SQLite: a temp file; PostgreSQL: a
 * `CREATE DATABASE sluice_test_<random>` through the admin URL, dropped afterwards).
 *
 * PostgreSQL admin URL: SLUICE_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test);
 * set it to `none` to run the SQLite half only.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { openStore, type Store, type StoreLocation } from "../../src/store/store.js";

export interface TestDatabase {
  readonly location: StoreLocation;
  drop(): Promise<void>;
}

export interface StoreKind {
  readonly name: "sqlite" | "postgres";
  /** A new, empty database that no other test uses. */
  createDatabase(): Promise<TestDatabase>;
}

export const PG_ADMIN_URL = process.env["SLUICE_TEST_PG_URL"] ?? "postgres://postgres@127.0.0.1:5432/test";

const sqliteKind: StoreKind = {
  name: "sqlite",
  async createDatabase() {
    const dir = await mkdtemp(join(tmpdir(), "sluice-store-"));
    return {
      location: { kind: "sqlite", path: join(dir, "sluice.db") },
      drop: () => rm(dir, { recursive: true, force: true }),
    };
  },
};

const postgresKind: StoreKind = {
  name: "postgres",
  async createDatabase() {
    const name = `sluice_test_${randomBytes(6).toString("hex")}`;
    await adminQuery(`CREATE DATABASE ${name}`);
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${name}`;
    return {
      location: { kind: "postgres", url: url.toString(), poolSize: 4 },
      // FORCE ends connections a failed test left open.
      drop: () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
    };
  },
};

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

export const STORES: readonly StoreKind[] = PG_ADMIN_URL === "none" ? [sqliteKind] : [sqliteKind, postgresKind];

export interface FreshStore {
  /** The store opened on this block's database (available inside tests). */
  readonly store: Store;
  readonly location: StoreLocation;
  /** Another empty database, dropped with this block's. */
  extraDatabase(): Promise<StoreLocation>;
}

/** Registers beforeAll/afterAll hooks: one fresh database and an open store per describe block. */
export function useFreshStore(kind: StoreKind): FreshStore {
  const databases: TestDatabase[] = [];
  let store: Store | undefined;
  let location: StoreLocation | undefined;
  beforeAll(async () => {
    const db = await kind.createDatabase();
    databases.push(db);
    location = db.location;
    store = await openStore(db.location);
  });
  afterAll(async () => {
    await store?.close();
    await Promise.allSettled(databases.map((d) => d.drop()));
  });
  return {
    get store() {
      if (store === undefined) throw new Error("useFreshStore: the store opens in beforeAll");
      return store;
    },
    get location() {
      if (location === undefined) throw new Error("useFreshStore: the database is created in beforeAll");
      return location;
    },
    async extraDatabase() {
      const db = await kind.createDatabase();
      databases.push(db);
      return db.location;
    },
  };
}
