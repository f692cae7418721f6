/**
 * Held claims' statements, where one process owns the store (SQLite; the source is
 * held-claims.ts). A claim only reads the next due pending rows after a cursor; the source
 * remembers the lines it holds and skips them, and rows stay pending until their verdict
 * (checkpoint.ts fences on that).
 * A leased claim writes each row once more than this (status, lease, two partial indexes): in
 * memory, the pipeline's own work per request fell by ~30 % (2026-11-29, docs/performance.md §3).
 *
 * Each claim also journals the lines it took (one `claim_ranges` row, same transaction), and the
 * dispatcher closes the entry once every one of them has its outcome committed. After a crash the
 * entries left say which rows were held: `recoverClaimRanges` counts an attempt for each of those
 * still pending, as a leased claim counts its attempt when claiming, so a request that kills the
 * process fails after the policy's attempts instead of crashing it forever.
 */

import { newClaimRangeId } from "../../ids.js";
import { rowCipher } from "../row-codec.js";
import type { Store } from "../store.js";
import type { ClaimedRequest } from "./claim-source.js";
import { type ClaimedRow, toClaimed } from "./leased-claim.js";

export interface ReadClaimableOptions {
  batchId: string;
  /** Rows after this line (the batch's cursor; -1 = from the start). */
  afterLine: number;
  limit: number;
  owner: string;
  /** Lines held already (read past, not taken). */
  held: { has(line: number): boolean };
  /** Only rows with this shared-prefix key. */
  prefixKey?: string | undefined;
  nowMs?: number | undefined;
}

export interface ClaimableRead {
  /** The rows taken, in line order; `attempt` = attempts ended so far + 1. */
  rows: ClaimedRequest[];
  /** Where the next read starts: the last line read, or -1 when this read reached the end. */
  next: number;
  /** The journal entry of the rows taken (none when nothing was taken). */
  rangeId: string | undefined;
}

export async function readClaimable(store: Store, o: ReadClaimableOptions): Promise<ClaimableRead> {
  const sync = store.caps.syncTransaction;
  if (sync === undefined) throw new Error("readClaimable: held claims need the store's synchronous fast path");
  const cipher = await rowCipher(store, o.batchId);
  const now = o.nowMs ?? Date.now();
  return sync((statement) => {
    const rows = (
      o.prefixKey === undefined
        ? statement(READ).all(o.batchId, now, o.afterLine, o.limit)
        : statement(READ_PREFIX).all(o.batchId, now, o.prefixKey, o.afterLine, o.limit)
    ) as ClaimedRow[];
    const last = rows[rows.length - 1];
    const next = rows.length < o.limit || last === undefined ? -1 : last.line;
    const taken = rows.filter((r) => !o.held.has(r.line));
    if (taken.length === 0) return { rows: [], next, rangeId: undefined };
    const rangeId = newClaimRangeId();
    statement(JOURNAL).run(rangeId, o.batchId, o.owner, taken.map((r) => r.line).join(","), now);
    return { rows: taken.map((r) => toClaimed(r, cipher)), next, rangeId };
  });
}

/** Drops journal entries whose rows all have their outcome committed. */
export async function closeClaimRanges(store: Store, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await store.db.deleteFrom("claim_ranges").where("id", "in", ids).execute();
}

/**
 * After a crash: every journal entry not written by `owner` (this process) was held by a process
 * that is gone. Counts an attempt for its lines that are still pending, then drops it. Returns the
 * rows counted.
 */
export async function recoverClaimRanges(store: Store, owner: string): Promise<number> {
  const entries = await store.db
    .selectFrom("claim_ranges")
    .select(["id", "batch_id", "lines"])
    .where("owner", "!=", owner)
    .execute();
  let counted = 0;
  for (const e of entries) {
    const lines = e.lines.split(",").map(Number);
    await store.db.transaction().execute(async (trx) => {
      for (let i = 0; i < lines.length; i += 500) {
        const res = await trx
          .updateTable("requests")
          .set((eb) => ({ attempts: eb("attempts", "+", 1) }))
          .where("batch_id", "=", e.batch_id)
          .where("line", "in", lines.slice(i, i + 500))
          .where("status", "=", "pending")
          .executeTakeFirst();
        counted += Number(res.numUpdatedRows);
      }
      await trx.deleteFrom("claim_ranges").where("id", "=", e.id).execute();
    });
  }
  return counted;
}

const COLUMNS = "tenant_id, batch_id, line, custom_id, model, body, prefix_key, attempts + 1 AS attempts, dup_count";
const READ = `SELECT ${COLUMNS}
  FROM requests WHERE batch_id = ? AND status = 'pending' AND next_attempt_ms <= ? AND line > ?
  ORDER BY line LIMIT ?`;
const READ_PREFIX = `SELECT ${COLUMNS}
  FROM requests WHERE batch_id = ? AND status = 'pending' AND next_attempt_ms <= ? AND prefix_key = ?
  AND line > ? ORDER BY line LIMIT ?`;

const JOURNAL = "INSERT INTO claim_ranges (id, batch_id, owner, lines, created_ms) VALUES (?, ?, ?, ?, ?)";
