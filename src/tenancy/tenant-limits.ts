/**
 * A tenant's effective limits: its own overrides (tenants.max_* columns) over the configured
 * defaults. Checked where objects are created, never later: upload size while the upload streams,
 * lines and tokens of the input file when a batch is created (src/tenancy/batch-quota.ts).
 */
import type { Limits } from "../config.js";
import type { Store } from "../store/store.js";
import { getTenant } from "../store/tenants.js";

export interface TenantLimits {
  maxFileBytes: number;
  maxBatchLines: number;
  maxConcurrentBatches: number;
  maxEnqueuedTokens: number;
}

export async function tenantLimits(store: Store, tenantId: string, defaults: Limits): Promise<TenantLimits> {
  const t = await getTenant(store, tenantId);
  const pick = (own: number | null | undefined, fallback: number) => (own == null ? fallback : Number(own));
  return {
    // An override can lower the server-wide maxima, never raise them past what the server accepts.
    maxFileBytes: Math.min(pick(t?.max_file_bytes, defaults.maxFileBytes), defaults.maxFileBytes),
    maxBatchLines: Math.min(pick(t?.max_batch_lines, defaults.maxLines), defaults.maxLines),
    maxConcurrentBatches: pick(t?.max_concurrent_batches, defaults.maxConcurrentBatches),
    maxEnqueuedTokens: pick(t?.max_enqueued_tokens, defaults.maxEnqueuedTokens),
  };
}
