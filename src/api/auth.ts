/**
 * Bearer-key authentication. A request's tenant comes only from its key. `SLUICE_API_KEY`, when set,
 * is the default tenant's key (compared in constant time); other keys are looked up by hash.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { unauthorized } from "../errors.js";
import type { Store } from "../store/store.js";
import { DEFAULT_TENANT, findApiKey, keysEqual } from "../store/tenants.js";

export interface Principal {
  tenantId: string;
  keyId: string | null;
  admin: boolean;
}

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal;
  }
}

export interface AuthOptions {
  store: Store;
  /** The key from SLUICE_API_KEY, if any. */
  envKey: string | undefined;
}

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== "string") return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest("principal", null as unknown as Principal);
  app.addHook("onRequest", async (request) => {
    if (!request.url.startsWith("/v1/")) return;
    const token = bearerToken(request);
    if (token === undefined || token.length > 512) throw unauthorized();
    if (options.envKey !== undefined && keysEqual(token, options.envKey)) {
      request.principal = { tenantId: DEFAULT_TENANT, keyId: null, admin: true };
      return;
    }
    const record = await findApiKey(options.store, token);
    if (record === undefined) throw unauthorized();
    request.principal = { tenantId: record.tenantId, keyId: record.id, admin: record.admin };
  });
}
