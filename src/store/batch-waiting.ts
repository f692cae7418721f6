/**
 * A batch waiting for an engine (dispatch/dispatcher.ts `waitingBatches`): the worker that holds
 * its rows records since when, so that every API process shows it on the Batch object.
 */
import type { Store } from "./store.js";

/** Sets (`since`: unix seconds) or clears (null) the wait of each batch, in one transaction. */
export async function setBatchesWaiting(
  store: Store,
  changes: readonly { batchId: string; since: number | null }[],
): Promise<void> {
  if (changes.length === 0) return;
  await store.db.transaction().execute(async (trx) => {
    for (const c of changes) {
      await trx.updateTable("batches").set({ waiting_since: c.since }).where("id", "=", c.batchId).execute();
    }
  });
}
