/**
 * Leased claim (PostgreSQL, many workers; SQLite's rows are held in memory instead:
 * held-claim.ts, though this works there too): pending → running under a lease. One UPDATE …
 * WHERE (batch_id, line) IN (candidates) RETURNING …; the candidate sub-select walks the partial
 * index of pending rows in line order and is locked with SKIP LOCKED on Postgres, so concurrent
 * workers never take the same row.
 */
import { sql } from "kysely";
import type { RequestInsertRow } from "../dialect.js";
import { type FieldCipher, rowCipher } from "../row-codec.js";
import type { Store } from "../store.js";
import type { ClaimedRequest } from "./claim-source.js";

export type { ClaimedRequest } from "./claim-source.js";

export interface ClaimOptions {
  batchId: string;
  owner: string;
  leaseMs: number;
  limit: number;
  /** Only rows with this shared-prefix key. */
  prefixKey?: string | undefined;
  nowMs?: number | undefined;
}

export async function claimRequests(store: Store, o: ClaimOptions): Promise<ClaimedRequest[]> {
  if (o.limit <= 0) return [];
  const now = o.nowMs ?? Date.now();
  const cipher = await rowCipher(store, o.batchId);
  const rows = await claimRows(store, o, now);
  // RETURNING order is unspecified: dispatch in input order.
  rows.sort((a, b) => a.line - b.line);
  return rows.map((r) => toClaimed(r, cipher));
}

/** A claimed row as stored (`attempts`: the attempt this claim makes). */
export type ClaimedRow = Pick<
  RequestInsertRow,
  "tenant_id" | "batch_id" | "line" | "custom_id" | "model" | "body" | "prefix_key"
> & {
  attempts: number | string | bigint;
  dup_count: number | string | bigint;
};

export function toClaimed(r: ClaimedRow, cipher: FieldCipher): ClaimedRequest {
  return {
    tenantId: r.tenant_id,
    batchId: r.batch_id,
    line: r.line,
    customId: cipher.open("custom_id", r.line, r.custom_id),
    model: r.model,
    body: cipher.open("body", r.line, r.body),
    prefixKey: r.prefix_key,
    attempt: Number(r.attempts),
    dupCount: Number(r.dup_count),
  };
}

function claimRows(store: Store, o: ClaimOptions, now: number): Promise<ClaimedRow[]> {
  // The candidates are a MATERIALIZED CTE, computed once. As `line IN (subquery)`, PostgreSQL may
  // plan a nested-loop semi join that re-runs the LIMIT … SKIP LOCKED subquery for every outer
  // row, each run returning the next unclaimed rows: one claim then took the whole batch.
  return store.db
    .with(
      (cte) => cte("candidates").materialized(),
      (db) => {
        let candidates = db
          .selectFrom("requests")
          .select("line")
          .where("batch_id", "=", o.batchId)
          // A literal, not a parameter: SQLite uses a partial index only when the query's
          // predicate matches it textually, and the claim must walk pending rows only.
          .where("status", "=", sql.lit("pending"))
          .where("next_attempt_ms", "<=", now);
        if (o.prefixKey !== undefined) candidates = candidates.where("prefix_key", "=", o.prefixKey);
        return store.caps.lockForClaim(candidates.orderBy("line").limit(o.limit));
      },
    )
    .updateTable("requests")
    .set({
      status: "running",
      lease_owner: o.owner,
      lease_expires_ms: now + o.leaseMs,
      attempts: sql`attempts + 1`,
    })
    .where("batch_id", "=", o.batchId)
    .where("line", "in", (eb) => eb.selectFrom("candidates").select("candidates.line"))
    .where("status", "=", "pending")
    .returning(["tenant_id", "batch_id", "line", "custom_id", "model", "body", "prefix_key", "attempts", "dup_count"])
    .execute();
}
