/** Opening a store: migrations, the default tenant, dialect capabilities and number parsing. */
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { openStore } from "../../src/store/store.js";
import { DEFAULT_TENANT } from "../../src/store/tenants.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

describe.each(STORES)("store on $name", (kind) => {
  const t = useFreshStore(kind);

  it("applies the migrations once and reopens without re-running them", async () => {
    const again = await openStore(t.location);
    await again.close();
    const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(t.store.db);
    expect(applied.rows.map((r) => r.name)).toEqual([
      "001-initial",
      "002-security",
      "003-claim-ranges",
      "004-custom-id-hash",
      "005-backend-outages",
      "006-reuse",
      "007-dedup",
    ]);
    const tables = await t.store.db.introspection.getTables();
    expect(tables.map((x) => x.name)).toEqual(
      expect.arrayContaining(["tenants", "api_keys", "files", "batches", "requests", "audit_log"]),
    );
  });

  it("creates the default tenant exactly once", async () => {
    const again = await openStore(t.location);
    await again.close();
    const rows = await t.store.db.selectFrom("tenants").selectAll().execute();
    expect(rows.map((r) => r.id)).toEqual([DEFAULT_TENANT]);
  });

  it.runIf(kind.name === "postgres")("migrates safely when three processes start at once", async () => {
    const location = await t.extraDatabase();
    const stores = await Promise.all([openStore(location), openStore(location), openStore(location)]);
    try {
      const [first] = stores;
      const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(first!.db);
      expect(applied.rows).toHaveLength(7);
      const tenants = await first!.db.selectFrom("tenants").select("id").execute();
      expect(tenants).toEqual([{ id: DEFAULT_TENANT }]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("returns bigint columns and COUNT/SUM results as JS numbers", async () => {
    const big = 2 ** 40 + 7;
    await t.store.db
      .insertInto("audit_log")
      .values({ id: "a1", tenant_id: DEFAULT_TENANT, key_id: null, action: "x", target: null, at: big })
      .execute();
    const row = await t.store.db.selectFrom("audit_log").select("at").where("id", "=", "a1").executeTakeFirstOrThrow();
    expect(row.at).toBe(big);
    const agg = await t.store.db
      .selectFrom("audit_log")
      .select((eb) => [eb.fn.countAll().as("n"), eb.fn.sum("at").as("total")])
      .executeTakeFirstOrThrow();
    expect(agg.n).toBe(1);
    expect(agg.total).toBe(big);
  });

  it("locks claim candidates with SKIP LOCKED only where the dialect needs it", () => {
    const candidates = t.store.caps.lockForClaim(
      t.store.db.selectFrom("requests").select(["batch_id", "line"]).where("status", "=", "pending").limit(10),
    );
    const text = candidates.compile().sql.toLowerCase();
    if (kind.name === "postgres") expect(text).toContain("for update skip locked");
    else expect(text).not.toContain("for update");
  });

  it("closes idempotently", async () => {
    const other = await openStore(t.location);
    await other.close();
    await other.close();
  });
});
