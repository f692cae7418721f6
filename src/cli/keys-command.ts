/**
 * `sluice keys create|list|revoke|rewrap`: API keys straight on the store (same --data/--store
 * flags as `serve`), so the first keys can be made before any server runs. A key is printed once
 * and stored only as a hash. `rewrap` re-wraps every data key with the newest master key after a
 * rotation, so older master keys can be retired.
 */
import type { Command } from "commander";
import { rewrapDataKeys } from "../crypto/data-keys.js";
import { SluiceError } from "../errors.js";
import { getApiKey, listApiKeys, revokeApiKey } from "../store/api-keys.js";
import { recordAudit } from "../store/audit.js";
import { dataKeyRows } from "../store/data-keys.js";
import { createApiKey, ensureTenant, findTenantByName, TENANT_NAME } from "../store/tenants.js";
import { addCommonOptions, type CommonCliFlags } from "./options.js";
import { withStore } from "./store-access.js";

export { registerTenantsCommand } from "./tenants-command.js";

interface CreateFlags extends CommonCliFlags {
  tenant: string;
  admin?: boolean;
  json?: boolean;
}

const date = (s: number | null) => (s === null ? "-" : new Date(Number(s) * 1000).toISOString().slice(0, 19));

export function registerKeysCommand(program: Command): void {
  const keys = program.command("keys").description("Manage API keys (tenants are created with their first key)");

  addCommonOptions(
    keys
      .command("create")
      .description("Create an API key for a tenant and print it (once)")
      .requiredOption("--tenant <name>", "tenant name (created if new)")
      .option("--admin", "an admin key: may use /v1/admin (keys, tenants, audit) for every tenant")
      .option("--json", "print {id, key, tenant, admin} as JSON"),
  ).action(async (flags: CreateFlags) => {
    if (!TENANT_NAME.test(flags.tenant)) {
      throw new SluiceError("invalid_tenant", "Tenant names are lowercase letters, digits, '_', '.', '-' (1-63).");
    }
    await withStore(flags, async (store) => {
      const tenant = await ensureTenant(store, flags.tenant);
      const admin = flags.admin === true;
      const { id, key } = await createApiKey(store, { tenantId: tenant.id, admin });
      await recordAudit(store, { tenantId: tenant.id, keyId: null, action: "key.create", target: id });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ id, key, tenant: tenant.name, admin })}\n`);
        return;
      }
      process.stderr.write(
        `Created ${admin ? "admin " : ""}key ${id} for tenant '${tenant.name}'. It is shown once; store it now:\n`,
      );
      process.stdout.write(`${key}\n`);
    });
  });

  addCommonOptions(
    keys
      .command("list")
      .description("List API keys (ids and prefixes; keys themselves are never stored)")
      .option("--tenant <name>", "only this tenant's keys")
      .option("--all", "include revoked keys")
      .option("--json", "one JSON object per line"),
  ).action(async (flags: CommonCliFlags & { tenant?: string; all?: boolean; json?: boolean }) => {
    await withStore(flags, async (store) => {
      let tenantId: string | undefined;
      if (flags.tenant !== undefined) {
        const tenant = await findTenantByName(store, flags.tenant);
        if (tenant === undefined) throw new SluiceError("unknown_tenant", `No tenant named '${flags.tenant}'.`);
        tenantId = tenant.id;
      }
      const rows = await listApiKeys(store, { tenantId, includeRevoked: flags.all === true });
      for (const k of rows) {
        const view = { ...k, admin: Number(k.admin) === 1 };
        process.stdout.write(
          flags.json
            ? `${JSON.stringify(view)}\n`
            : `${k.id}  ${k.tenant_name}  ${k.prefix}…  ${view.admin ? "admin" : "user"}  created ${date(k.created_at)}${k.revoked_at === null ? "" : `  revoked ${date(k.revoked_at)}`}\n`,
        );
      }
    });
  });

  addCommonOptions(keys.command("revoke <id>").description("Revoke an API key at once")).action(
    async (id: string, flags: CommonCliFlags) => {
      await withStore(flags, async (store) => {
        const key = await getApiKey(store, id);
        if (key === undefined || !(await revokeApiKey(store, id))) {
          throw new SluiceError("unknown_key", `No active key with id '${id}'.`);
        }
        await recordAudit(store, { tenantId: key.tenant_id, keyId: null, action: "key.revoke", target: id });
        process.stdout.write(`Revoked ${id} (tenant '${key.tenant_name}').\n`);
      });
    },
  );

  addCommonOptions(
    keys
      .command("rewrap")
      .description("Re-wrap every data key with the newest master key (after adding one to SLUICE_MASTER_KEY)"),
  ).action(async (flags: CommonCliFlags) => {
    await withStore(flags, async (store, common) => {
      if (common.masterKeys === undefined) {
        throw new SluiceError("no_master_key", "Set SLUICE_MASTER_KEY or SLUICE_MASTER_KEY_FILE first.");
      }
      const n = await rewrapDataKeys(dataKeyRows(store), common.masterKeys);
      process.stdout.write(`Re-wrapped ${n} data keys with master key '${common.masterKeys.current.id}'.\n`);
    });
  });
}
