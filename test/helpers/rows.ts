/** Row builders for store tests: a batch row with fixed identity, and pending request rows. */
import { type BatchRow, newBatchRow } from "../../src/store/batches.js";
import type { RequestInsertRow } from "../../src/store/dialect.js";
import type { Store } from "../../src/store/store.js";

/** A batch row of tenant `tenantId` (validating, counters zero unless `overrides` say otherwise). */
export function testBatch(
  id: string,
  overrides: Partial<BatchRow> = {},
  identity: { tenantId?: string; createdAt?: number; expiresAt?: number } = {},
): BatchRow {
  return newBatchRow(
    {
      id,
      tenant_id: identity.tenantId ?? "t1",
      endpoint: "/v1/chat/completions",
      input_file_id: "file-in",
      completion_window: "24h",
      created_at: identity.createdAt ?? 1_700_000_000,
      expires_at: identity.expiresAt ?? 1_700_086_400,
    },
    overrides,
  );
}

/** Inserts lines 1…count of a batch as pending rows (tenant `default`), 500 per statement. */
export async function seedPendingRequests(
  store: Store,
  batchId: string,
  count: number,
  body: (line: number) => string = () => "{}",
): Promise<void> {
  const rows: RequestInsertRow[] = Array.from({ length: count }, (_, i) => ({
    tenant_id: "default",
    batch_id: batchId,
    line: i + 1,
    custom_id: `c-${i + 1}`,
    model: "m",
    body: body(i + 1),
    status: "pending",
    prefix_key: null,
  }));
  for (let i = 0; i < rows.length; i += 500) {
    await store.db
      .insertInto("requests")
      .values(rows.slice(i, i + 500))
      .execute();
  }
}
