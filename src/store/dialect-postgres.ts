/**
 * PostgreSQL capabilities: SKIP LOCKED claims and COPY-based bulk ingest. Rows are COPYed into a
 * session-local staging table, then moved with `INSERT … SELECT … ON CONFLICT DO NOTHING`, so
 * duplicates of `(batch_id, custom_id_hash)` are skipped exactly as the multi-row INSERT path skips them.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Pool } from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { type BatchLease, LeaseLostError } from "./batch-lease.js";
import { LeasedClaims } from "./claims/leased-claims.js";
import type { DialectCapabilities, RequestInsertRow } from "./dialect.js";

const STAGING = "sluice_requests_staging_v3";
const COLUMNS =
  "tenant_id, batch_id, line, custom_id, custom_id_hash, model, body, prefix_key, reuse_key, resubmit_key, dedup_key";

// ON COMMIT DELETE ROWS empties the table at each commit; it lives as long as the connection.
const BEGIN_AND_STAGE = `BEGIN; CREATE TEMP TABLE IF NOT EXISTS ${STAGING} (
  tenant_id text, batch_id text, line integer, custom_id text, custom_id_hash text, model text, body text,
  prefix_key text, reuse_key text, resubmit_key text, dedup_key text
) ON COMMIT DELETE ROWS`;

const MOVE = `INSERT INTO requests (${COLUMNS}, status)
  SELECT ${COLUMNS}, 'pending' FROM ${STAGING} ORDER BY line
  ON CONFLICT (batch_id, custom_id_hash) DO NOTHING
  RETURNING line`;

export function postgresCapabilities(pool: Pick<Pool, "connect">): DialectCapabilities {
  return {
    name: "postgres",
    // Many workers share the store: each claim leases its rows.
    createClaimSource: (store, options) => new LeasedClaims(store, options),
    // 8 bound parameters per row on the INSERT path; COPY has no limit but chunks bound memory.
    insertChunkRows: 5000,
    lockForClaim: (qb) => qb.forUpdate().skipLocked(),
    bulkInsertRequests: (rows, lease) => copyRequests(pool, rows, lease),
    afterShred: () => vacuumDataKeys(pool),
  };
}

/**
 * VACUUM (not in a transaction, so on a pool connection of its own) makes the deleted key rows'
 * space reusable now instead of whenever autovacuum comes by; it cannot reach WAL segments,
 * archives, replicas or backups (docs/security.md). `data_keys` holds one short row per file and
 * batch, so this stays cheap.
 */
async function vacuumDataKeys(pool: Pick<Pool, "connect">): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query("VACUUM data_keys");
  } finally {
    client.release();
  }
}

/** The lease fence of a fenced COPY: locks the batch row and confirms the validation job's lease. */
const CONFIRM_LEASE = "UPDATE batches SET owner = owner WHERE id = $1 AND owner = $2";

async function copyRequests(
  pool: Pick<Pool, "connect">,
  rows: readonly RequestInsertRow[],
  lease?: BatchLease,
): Promise<number[]> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    try {
      await client.query(BEGIN_AND_STAGE);
      if (lease !== undefined) {
        const held = await client.query(CONFIRM_LEASE, [lease.batchId, lease.owner]);
        if (held.rowCount === 0) throw new LeaseLostError(lease.batchId);
      }
      await pipeline(
        Readable.from(encodeRows(rows)),
        client.query(copyFrom(`COPY ${STAGING} (${COLUMNS}) FROM STDIN`)),
      );
      const moved = await client.query<{ line: number }>(MOVE);
      await client.query("COMMIT");
      return moved.rows.map((r) => r.line);
    } catch (err) {
      await client.query("ROLLBACK").catch((e: Error) => {
        broken = e;
      });
      throw err;
    }
  } finally {
    // A connection whose ROLLBACK failed is in an unknown state: destroy it rather than reuse it.
    client.release(broken);
  }
}

const nullable = (v: string | null) => (v === null ? "\\N" : text(v));

/** COPY text format, a few hundred rows per chunk written to the socket. */
function* encodeRows(rows: readonly RequestInsertRow[]): Generator<string> {
  const ROWS_PER_CHUNK = 500;
  let buf = "";
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as RequestInsertRow;
    buf += `${text(r.tenant_id)}\t${text(r.batch_id)}\t${r.line}\t${text(r.custom_id)}\t${text(r.custom_id_hash ?? r.custom_id)}\t${text(r.model)}\t${text(r.body)}\t${nullable(r.prefix_key)}\t${nullable(r.reuse_key ?? null)}\t${nullable(r.resubmit_key ?? null)}\t${nullable(r.dedup_key ?? null)}\n`;
    if ((i + 1) % ROWS_PER_CHUNK === 0) {
      yield buf;
      buf = "";
    }
  }
  if (buf.length > 0) yield buf;
}

const SPECIAL = /[\\\n\r\t]/;
const SPECIAL_ALL = /[\\\n\r\t]/g;
const ESCAPES: Record<string, string> = { "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t" };

function text(value: string): string {
  return SPECIAL.test(value) ? value.replace(SPECIAL_ALL, (c) => ESCAPES[c] ?? c) : value;
}
