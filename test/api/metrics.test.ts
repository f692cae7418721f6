/** `/metrics`: queue gauges counted from the store on every dialect, in Prometheus text format. */
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { renderPrometheus } from "../../src/api/metrics-routes.js";
import { collectQueueMetrics } from "../../src/store/queue-metrics.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

describe.each(STORES)("queue metrics on $name", (kind) => {
  const fresh = useFreshStore(kind);

  it("counts pending and running requests and batches by status", async () => {
    const { db } = fresh.store;
    for (const [id, status] of [
      ["batch_m1", "in_progress"],
      ["batch_m2", "in_progress"],
      ["batch_m3", "completed"],
      ["batch_m4", "validating"],
    ]) {
      await sql`INSERT INTO batches (id, tenant_id, endpoint, input_file_id, completion_window, status, created_at, expires_at)
        VALUES (${id}, 'default', '/v1/chat/completions', 'file-x', '24h', ${status}, 1, 2)`.execute(db);
    }
    const statuses = ["pending", "pending", "pending", "running", "succeeded", "failed", "pending"] as const;
    await db
      .insertInto("requests")
      .values(
        statuses.map((status, i) => ({
          tenant_id: "default",
          batch_id: i < 4 ? "batch_m1" : "batch_m2",
          line: i + 1,
          custom_id: `c-${i}`,
          model: "m",
          body: "{}",
          status,
        })),
      )
      .execute();
    const m = await collectQueueMetrics(fresh.store);
    expect(m.pendingRequests).toBe(4);
    expect(m.runningRequests).toBe(1);
    expect(m.batches).toMatchObject({ in_progress: 2, completed: 1, validating: 1, failed: 0, cancelled: 0 });

    const text = renderPrometheus(m);
    expect(text).toContain("# TYPE sluice_pending_requests gauge\nsluice_pending_requests 4\n");
    expect(text).toContain("sluice_running_requests 1\n");
    expect(text).toContain("sluice_backlog_requests 5\n");
    expect(text).toContain('sluice_batches{status="in_progress"} 2\n');
    expect(text).toContain('sluice_batches{status="expired"} 0\n');
    // Every sample line is `name{labels} value`: what a Prometheus scraper accepts.
    for (const line of text.trimEnd().split("\n")) {
      expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|sluice_\w+(\{status="\w+"\})? \d+)$/);
    }
  });
});
