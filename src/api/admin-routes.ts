/**
 * Admin API (admin keys only; admins act across tenants, like the `sluice keys` CLI):
 *   POST   /v1/admin/keys                  {tenant, admin?} → the new key, shown once
 *   GET    /v1/admin/keys?tenant=&include_revoked=
 *   DELETE /v1/admin/keys/{id}             revoke
 *   GET    /v1/admin/tenants
 *   PUT    /v1/admin/tenants/{name}/limits {max_file_bytes?, max_batch_lines?, max_concurrent_batches?, max_enqueued_tokens?}
 *   GET    /v1/admin/audit?tenant=&limit=&after=
 * A non-admin key gets 403 on every one of them, whatever the ids: nothing about other tenants leaks
 * (each route declares `access("admin")`; src/api/auth.ts checks it on the matched route).
 * Each write and its audit entry commit in one transaction: a handler that fails leaves nothing behind.
 */
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { AppContext } from "../context.js";
import { notFound } from "../errors.js";
import { type ApiKeyView, getApiKey, listApiKeys, revokeApiKey } from "../store/api-keys.js";
import { listAudit, recordAudit } from "../store/audit.js";
import { inTransaction } from "../store/store.js";
import {
  createApiKey,
  ensureTenant,
  findTenantByName,
  listTenants,
  setTenantLimits,
  TENANT_NAME,
  type TenantRow,
} from "../store/tenants.js";
import { access } from "./auth.js";
import { listObject } from "./serializers.js";
import { parseBody, parseId, parseQuery } from "./validation.js";

const tenantName = z.string().regex(TENANT_NAME, "lowercase letters, digits, '_', '.', '-' (1-63 chars)");
const createKeyBody = z.object({ tenant: tenantName, admin: z.boolean().default(false) }).strict();
const listKeysQuery = z.object({
  tenant: tenantName.optional(),
  include_revoked: z.enum(["true", "false"]).default("false"),
});
const limit = z.number().int().positive().max(Number.MAX_SAFE_INTEGER).nullable().optional();
const limitsBody = z
  .object({
    max_file_bytes: limit,
    max_batch_lines: limit,
    max_concurrent_batches: limit,
    max_enqueued_tokens: limit,
  })
  .strict();
const auditQuery = z.object({
  tenant: tenantName.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  after: z.string().max(128).optional(),
});

const keyObject = (k: ApiKeyView) => ({
  object: "api_key" as const,
  id: k.id,
  tenant: k.tenant_name,
  prefix: k.prefix,
  admin: Number(k.admin) === 1,
  created_at: Number(k.created_at),
  revoked_at: k.revoked_at === null ? null : Number(k.revoked_at),
});

const nullableNumber = (v: number | null) => (v === null ? null : Number(v));
export const tenantObject = (t: TenantRow) => ({
  object: "tenant" as const,
  id: t.id,
  name: t.name,
  created_at: Number(t.created_at),
  limits: {
    max_file_bytes: nullableNumber(t.max_file_bytes),
    max_batch_lines: nullableNumber(t.max_batch_lines),
    max_concurrent_batches: nullableNumber(t.max_concurrent_batches),
    max_enqueued_tokens: nullableNumber(t.max_enqueued_tokens),
  },
});

export function registerAdminRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.post("/v1/admin/keys", access("admin"), async (request) => {
    const body = parseBody(createKeyBody, request.body);
    return inTransaction(ctx.store, async (tx) => {
      const tenant = await ensureTenant(tx, body.tenant);
      const { id, key } = await createApiKey(tx, { tenantId: tenant.id, admin: body.admin });
      await recordAudit(tx, { tenantId: tenant.id, keyId: request.principal.keyId, action: "key.create", target: id });
      const view = await getApiKey(tx, id);
      if (view === undefined) throw notFound("api key", id);
      return { ...keyObject(view), key };
    });
  });

  app.get("/v1/admin/keys", access("admin"), async (request) => {
    const q = parseQuery(listKeysQuery, request.query);
    let tenantId: string | undefined;
    if (q.tenant !== undefined) {
      const tenant = await findTenantByName(ctx.store, q.tenant);
      if (tenant === undefined) return listObject([], false);
      tenantId = tenant.id;
    }
    const rows = await listApiKeys(ctx.store, { tenantId, includeRevoked: q.include_revoked === "true" });
    return listObject(rows.map(keyObject), false);
  });

  app.delete("/v1/admin/keys/:id", access("admin"), async (request) => {
    const id = parseId("api key", request.params);
    return inTransaction(ctx.store, async (tx) => {
      const key = await getApiKey(tx, id);
      if (key === undefined || !(await revokeApiKey(tx, id))) throw notFound("active api key", id);
      await recordAudit(tx, {
        tenantId: key.tenant_id,
        keyId: request.principal.keyId,
        action: "key.revoke",
        target: id,
      });
      return { object: "api_key", id, revoked: true };
    });
  });

  app.get("/v1/admin/tenants", access("admin"), async () => {
    const rows = await listTenants(ctx.store);
    return listObject(rows.map(tenantObject), false);
  });

  app.put("/v1/admin/tenants/:name/limits", access("admin"), async (request) => {
    const name = (request.params as { name?: string }).name ?? "";
    const parsedName = tenantName.safeParse(name);
    const tenant = parsedName.success ? await findTenantByName(ctx.store, parsedName.data) : undefined;
    if (tenant === undefined) throw notFound("tenant", name.slice(0, 64));
    const body = parseBody(limitsBody, request.body);
    const changes = Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
    return inTransaction(ctx.store, async (tx) => {
      await setTenantLimits(tx, tenant.id, changes);
      await recordAudit(tx, {
        tenantId: tenant.id,
        keyId: request.principal.keyId,
        action: "tenant.limits",
        target: tenant.id,
      });
      const updated = await findTenantByName(tx, tenant.name);
      return tenantObject(updated ?? tenant);
    });
  });

  app.get("/v1/admin/audit", access("admin"), async (request) => {
    const q = parseQuery(auditQuery, request.query);
    let tenantId: string | undefined;
    if (q.tenant !== undefined) {
      const tenant = await findTenantByName(ctx.store, q.tenant);
      if (tenant === undefined) return listObject([], false);
      tenantId = tenant.id;
    }
    const rows = await listAudit(ctx.store, { tenantId, limit: q.limit + 1, after: q.after });
    const data = rows.slice(0, q.limit).map((r) => ({
      object: "audit_entry" as const,
      id: r.id,
      tenant_id: r.tenant_id,
      key_id: r.key_id,
      action: r.action,
      target: r.target,
      at: Number(r.at),
    }));
    return listObject(data, rows.length > q.limit);
  });
}
