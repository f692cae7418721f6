/**
 * Table types for Kysely. Times that the API exposes are unix seconds; times used for leases and
 * retry scheduling are unix milliseconds (columns ending in `_ms`). JSON columns hold text.
 */
import type { Generated } from "kysely";

export interface TenantTable {
  id: string;
  name: string;
  created_at: number;
  /** Per-tenant overrides of the configured limits; null = the configured default. */
  max_file_bytes: number | null;
  max_batch_lines: number | null;
  max_concurrent_batches: number | null;
  max_enqueued_tokens: number | null;
}

export interface ApiKeyTable {
  id: string;
  tenant_id: string;
  key_hash: string;
  prefix: string;
  admin: number;
  created_at: number;
  revoked_at: number | null;
}

export interface FileTable {
  id: string;
  tenant_id: string;
  purpose: string;
  filename: string;
  bytes: number;
  created_at: number;
  expires_at: number | null;
  status: string;
  blob_key: string;
  /** Non-blank lines and estimated input tokens, counted while the upload streamed (null: unknown). */
  line_count: number | null;
  token_estimate: number | null;
}

export interface BatchTable {
  id: string;
  tenant_id: string;
  endpoint: string;
  input_file_id: string;
  completion_window: string;
  status: string;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  output_file_id: string | null;
  error_file_id: string | null;
  errors: string | null;
  metadata: string | null;
  output_expires_seconds: number | null;
  model: string | null;
  total: number;
  completed: number;
  failed: number;
  input_tokens: number;
  cached_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  /** Status the batch takes when finalization ends: completed, expired or cancelled. */
  end_status: string | null;
  /** Worker holding the batch-level lease for validation or finalization. */
  owner: string | null;
  owner_expires_ms: number | null;
  /** Estimated input tokens of the batch (from its input file), counted against the tenant's limit. */
  token_estimate: number;
  /**
   * Since when (unix seconds) the batch has been waiting for an engine (no replica of its route
   * answers), or null (migration 005). Written by the worker that holds its rows.
   */
  waiting_since: number | null;
  /** Which finished lines of the tenant a line may take instead of a call (migration 006). */
  reuse_mode: ReuseMode;
  /** Which identical lines of the batch are sent once (migration 006). */
  dedup_mode: DedupMode;
  /** Lines answered from another batch's result, without a call. */
  reused: number;
  /** Lines answered by an identical line of the same batch (one call for all). */
  merged: number;
}

export type ReuseMode = "custom_id+body" | "body" | "off";
export type DedupMode = "deterministic" | "all" | "off";

export interface RequestTable {
  tenant_id: string;
  batch_id: string;
  line: number;
  /** Sealed under the batch's data key when encryption is on. */
  custom_id: string;
  /** What custom_id uniqueness is checked on (migration 004); NULL on rows ingested before it. */
  custom_id_hash: string | null;
  model: string;
  body: string;
  status: RequestStatus;
  attempts: Generated<number>;
  next_attempt_ms: Generated<number>;
  lease_owner: string | null;
  lease_expires_ms: number | null;
  response_status: number | null;
  request_id: string | null;
  /** Response body (JSON text) for successes and upstream HTTP errors. */
  result: string | null;
  /** `{code, message}` JSON text for failures without an HTTP answer. */
  error: string | null;
  input_tokens: number | null;
  cached_tokens: number | null;
  output_tokens: number | null;
  reasoning_tokens: number | null;
  finished_ms: number | null;
  /** Scheduling key for shared-prefix ordering (reserved; ordering uses `line` today). */
  prefix_key: string | null;
  /** Keyed hash of endpoint, model, route identity and canonical body (batch/request-key.ts). */
  reuse_key: string | null;
  /** Keyed hash of the custom_id with `reuse_key`: a resubmission. */
  resubmit_key: string | null;
  /** The batch whose result this line took instead of a call (null: it was called, or not yet). */
  reused_from: string | null;
  /** The line of this batch whose answer this merged line takes (status `merged` until then). */
  dup_of: number | null;
  /** How many merged lines wait for this one. */
  dup_count: Generated<number>;
  /**
   * `reuse_key` when the batch's dedup mode lets this line merge with identical lines of the batch
   * (set at ingest, migration 007); null: it is always called on its own.
   */
  dedup_key: string | null;
}

export type RequestStatus = "pending" | "running" | "merged" | "succeeded" | "failed" | "cancelled" | "expired";

export interface AuditTable {
  id: string;
  tenant_id: string;
  key_id: string | null;
  action: string;
  target: string | null;
  at: number;
}

/** A data key (AES-256), wrapped by a master key; deleting the row crypto-shreds its data. */
export interface DataKeyTable {
  /** Id of the file or batch the key encrypts. */
  id: string;
  master_key_id: string;
  /** base64(nonce ‖ ciphertext ‖ tag) */
  wrapped: string;
  created_at: number;
}

export interface Database {
  tenants: TenantTable;
  api_keys: ApiKeyTable;
  files: FileTable;
  batches: BatchTable;
  requests: RequestTable;
  audit_log: AuditTable;
  data_keys: DataKeyTable;
  claim_ranges: ClaimRangeTable;
  backend_health: BackendHealthTable;
  dedup_groups: DedupGroupTable;
}

/**
 * The merge pass's working rows (migration 007, store/requests/dedup.ts): per batch, each key that
 * more than one pending line asks, with its first line. Emptied when the pass ends.
 */
export interface DedupGroupTable {
  batch_id: string;
  dedup_key: string;
  leader: number;
  /** The key's other pending lines, which wait for the leader. */
  followers: number;
}

/** What the workers sharing a store know of a backend replica (migration 005). */
export interface BackendHealthTable {
  /** A hash of the replica's URL (a URL may carry credentials). */
  backend: string;
  /** Down since (unix ms), or null: up. */
  down_since_ms: number | null;
  cause: string;
  updated_ms: number;
  /** The worker that wrote it. */
  updated_by: string;
}

/** An in-memory claim's journal entry (SQLite): the lines one read took, until all are committed. */
export interface ClaimRangeTable {
  id: string;
  batch_id: string;
  owner: string;
  /** Comma-separated line numbers, ascending. */
  lines: string;
  created_ms: number;
}
