/** `sluice tenants list|limits`: per-tenant limit overrides, straight on the store. */
import type { Command } from "commander";
import { tenantObject } from "../api/admin-routes.js";
import { SluiceError } from "../errors.js";
import { recordAudit } from "../store/audit.js";
import { findTenantByName, listTenants, setTenantLimits, type TenantLimitColumns } from "../store/tenants.js";
import { addCommonOptions, type CommonCliFlags } from "./options.js";
import { withStore } from "./store-access.js";

interface LimitFlags extends CommonCliFlags {
  maxFileBytes?: string;
  maxBatchLines?: string;
  maxConcurrentBatches?: string;
  maxEnqueuedTokens?: string;
}

/** A positive integer, or `none` to fall back to the server-wide default. */
function limitValue(flag: string, raw: string | undefined): number | null | undefined {
  if (raw === undefined) return undefined;
  if (raw === "none") return null;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new SluiceError("invalid_limit", `${flag} must be a positive integer or 'none'.`);
  return n;
}

export function registerTenantsCommand(program: Command): void {
  const tenants = program.command("tenants").description("List tenants and set their limits");

  addCommonOptions(tenants.command("list").description("List tenants with their limit overrides")).action(
    async (flags: CommonCliFlags) => {
      await withStore(flags, async (store) => {
        for (const t of await listTenants(store)) process.stdout.write(`${JSON.stringify(tenantObject(t))}\n`);
      });
    },
  );

  addCommonOptions(
    tenants
      .command("limits <name>")
      .description("Set a tenant's limits (a number, or 'none' for the server default); prints the result")
      .option("--max-file-bytes <n>", "largest upload")
      .option("--max-batch-lines <n>", "most requests per batch")
      .option("--max-concurrent-batches <n>", "most unfinished batches at once")
      .option("--max-enqueued-tokens <n>", "estimated input tokens of unfinished batches, together"),
  ).action(async (name: string, flags: LimitFlags) => {
    await withStore(flags, async (store) => {
      const tenant = await findTenantByName(store, name);
      if (tenant === undefined) throw new SluiceError("unknown_tenant", `No tenant named '${name}'.`);
      const changes: Partial<TenantLimitColumns> = {};
      const set = (column: keyof TenantLimitColumns, flag: string, raw: string | undefined) => {
        const v = limitValue(flag, raw);
        if (v !== undefined) changes[column] = v;
      };
      set("max_file_bytes", "--max-file-bytes", flags.maxFileBytes);
      set("max_batch_lines", "--max-batch-lines", flags.maxBatchLines);
      set("max_concurrent_batches", "--max-concurrent-batches", flags.maxConcurrentBatches);
      set("max_enqueued_tokens", "--max-enqueued-tokens", flags.maxEnqueuedTokens);
      await setTenantLimits(store, tenant.id, changes);
      await recordAudit(store, { tenantId: tenant.id, keyId: null, action: "tenant.limits", target: tenant.id });
      const updated = (await findTenantByName(store, name)) ?? tenant;
      process.stdout.write(`${JSON.stringify(tenantObject(updated))}\n`);
    });
  });
}
