/**
 * The Store: a Kysely handle plus the dialect's capabilities. Query modules in this folder take a
 * Store and expose domain operations; no driver or transaction type leaks past this folder.
 */
import type { Kysely } from "kysely";
import { type DataKeyRows, type DataKeys, dataKeyRows, plaintextDataKeys } from "./data-keys.js";
import type { DialectCapabilities } from "./dialect.js";
import { migrateToLatest } from "./migrator.js";
import { plaintextRowCodec, type RowCodec } from "./row-codec.js";
import type { Database } from "./schema.js";
import { openSqlite } from "./sqlite.js";
import { ensureDefaultTenant } from "./tenants.js";

export interface Store {
  readonly db: Kysely<Database>;
  readonly caps: DialectCapabilities;
  /** Per-file and per-batch data keys (encryption at rest); disabled without a master key. */
  readonly dataKeys: DataKeys;
  /** Seals and opens user data in rows (row-codec.ts); the identity without encryption. */
  readonly rowCodec: RowCodec;
  close(): Promise<void>;
}

/**
 * Runs `work` in one transaction, over a view of the store whose queries all join it: everything
 * it wrote commits together or not at all (a handler that throws leaves nothing behind).
 */
export async function inTransaction<T>(store: Store, work: (tx: Store) => Promise<T>): Promise<T> {
  return store.db.transaction().execute((trx) => work({ ...store, db: trx }));
}

export type StoreLocation =
  | { kind: "sqlite"; path: string }
  /** `poolSize`: connections per process (default 10). */
  | { kind: "postgres"; url: string; poolSize?: number | undefined };

export interface StoreOptions {
  /**
   * Encryption at rest: makes the store's data keys from its `data_keys` rows and the row codec
   * over them (`encryptionAtRest(ring)`, src/crypto/row-cipher.ts); absent = data stored in plaintext.
   */
  encryption?: ((rows: DataKeyRows) => { dataKeys: DataKeys; rowCodec: RowCodec }) | undefined;
}

export async function openStore(location: StoreLocation, options: StoreOptions = {}): Promise<Store> {
  let db: Kysely<Database>;
  let caps: DialectCapabilities;
  if (location.kind === "sqlite") {
    ({ db, caps } = openSqlite({ path: location.path }));
  } else {
    const pg = await import("./postgres.js");
    ({ db, caps } = await pg.openPostgres({ url: location.url, poolSize: location.poolSize }));
  }
  await migrateToLatest(db as unknown as Kysely<unknown>);
  let closed = false;
  const encryption = options.encryption?.(dataKeyRows({ db, caps }));
  const store: Store = {
    db,
    caps,
    dataKeys: encryption?.dataKeys ?? plaintextDataKeys,
    rowCodec: encryption?.rowCodec ?? plaintextRowCodec,
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
  await ensureDefaultTenant(store);
  return store;
}
