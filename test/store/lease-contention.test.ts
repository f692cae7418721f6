/**
 * Row-lock contention between a worker's housekeeping and its group commits (PostgreSQL):
 * - renewing leases skips rows another transaction holds instead of waiting on them (waiting, in
 *   another lock order than the checkpoint's, deadlocked with it);
 * - a group commit that fails is retried, not dropped: dropped outcomes left their rows `running`
 *   under a lease the live worker kept renewing, so the batch never finished.
 * Each store here runs with a short lock_timeout, so a wait shows up as an error, not a hang.
 */
import { sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Checkpointer } from "../../src/dispatch/checkpointer.js";
import { leaseFence } from "../../src/store/claims/claim-source.js";
import { renewLeases } from "../../src/store/claims/leases.js";
import { openStore, type Store } from "../../src/store/store.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const postgres = STORES.find((k) => k.name === "postgres");

describe.skipIf(postgres === undefined)("lease contention on PostgreSQL", () => {
  const fresh = useFreshStore(postgres as NonNullable<typeof postgres>);
  let store: Store;
  let url: string;

  beforeAll(async () => {
    if (fresh.location.kind !== "postgres") throw new Error("expected PostgreSQL");
    const u = new URL(fresh.location.url);
    u.searchParams.set("options", "-c lock_timeout=300");
    url = u.toString();
    store = await openStore({ kind: "postgres", url, poolSize: 2 });
  });
  afterAll(async () => store?.close());

  /** Runs `body` while another connection holds `lockSql`'s row locks in an open transaction. */
  async function whileLocked<T>(lockSql: string, params: unknown[], body: () => Promise<T>): Promise<T> {
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      await other.query("BEGIN");
      await other.query(lockSql, params);
      return await body();
    } finally {
      await other.query("ROLLBACK").catch(() => {});
      await other.end();
    }
  }

  const seed = async (batchId: string, rows: number) => {
    await sql`INSERT INTO batches (id, tenant_id, endpoint, input_file_id, completion_window, status, created_at, expires_at, total)
      VALUES (${batchId}, 'default', '/v1/chat/completions', 'file-x', '24h', 'in_progress', 1, 9999999999, ${rows})`.execute(
      store.db,
    );
    await store.db
      .insertInto("requests")
      .values(
        Array.from({ length: rows }, (_, i) => ({
          tenant_id: "default",
          batch_id: batchId,
          line: i + 1,
          custom_id: `c-${i}`,
          model: "m",
          body: "{}",
          status: "running" as const,
          attempts: 1,
          lease_owner: "w1",
          lease_expires_ms: 1000,
        })),
      )
      .execute();
  };

  it("renews the leases it can without waiting on rows being written", async () => {
    await seed("batch_renew", 5);
    const renewed = await whileLocked(
      "SELECT line FROM requests WHERE batch_id = $1 AND line IN (2, 4) FOR UPDATE",
      ["batch_renew"],
      () => renewLeases(store, "w1", 60_000, 10_000),
    );
    expect(renewed).toBe(3);
    const rows = await store.db
      .selectFrom("requests")
      .select(["line", "lease_expires_ms"])
      .where("batch_id", "=", "batch_renew")
      .orderBy("line")
      .execute();
    expect(rows.map((r) => Number(r.lease_expires_ms))).toEqual([70_000, 1000, 70_000, 1000, 70_000]);
    expect(await renewLeases(store, "w1", 60_000, 20_000)).toBe(5);
  });

  it("retries a group commit that failed instead of dropping its outcomes", async () => {
    await seed("batch_retry", 1);
    const errors: unknown[] = [];
    const committed: number[] = [];
    const checkpointer = new Checkpointer(store, leaseFence("w1"), { maxDelayMs: 1 });
    checkpointer.onError = (err) => errors.push(err);
    checkpointer.onCommitted = (_progress, written) => committed.push(written);
    await whileLocked("SELECT id FROM batches WHERE id = $1 FOR UPDATE", ["batch_retry"], async () => {
      checkpointer.add({
        kind: "succeeded",
        batchId: "batch_retry",
        line: 1,
        responseStatus: 200,
        requestId: "req-1",
        result: "{}",
        error: null,
        usage: null,
      });
      // The batch row is locked: the group's transaction times out and rolls back.
      while (errors.length === 0) await new Promise((r) => setTimeout(r, 10));
    });
    await checkpointer.flush();
    expect(committed).toEqual([1]);
    const row = await store.db
      .selectFrom("requests")
      .select(["status", "lease_owner"])
      .where("batch_id", "=", "batch_retry")
      .executeTakeFirstOrThrow();
    expect(row).toEqual({ status: "succeeded", lease_owner: null });
    const batch = await store.db
      .selectFrom("batches")
      .select("completed")
      .where("id", "=", "batch_retry")
      .executeTakeFirstOrThrow();
    expect(Number(batch.completed)).toBe(1);
  });
});
