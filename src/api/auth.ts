/**
 * Authentication and authorization, decided for the route that matched — never by testing the URL.
 *
 * Every route declares its access in its options (`config: { access }`, see `access()`):
 *   public  no key (only /health, and /metrics when the operator opts out of its key)
 *   tenant  any active key; the request's tenant comes only from the key
 *   admin   an admin key (admins act across tenants)
 * Deny by default: registering a route without a declaration throws, so the server refuses to
 * start; a request that matches no route needs a key before it learns that (401, then 404).
 *
 * Before any of that, the request target must be canonical (`canonicalTarget`): origin-form, and
 * a path made only of unreserved characters with no empty or dot segments. Percent-encoding,
 * doubled slashes, `.`/`..`, backslashes and absolute-form targets are refused with 400, so the
 * path a handler sees is byte for byte the path the client sent and the router matched.
 * `SLUICE_API_KEY`, when set, is the default tenant's admin key (compared in constant time);
 * other keys are looked up by hash.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from "fastify";
import { SluiceError, unauthorized } from "../errors.js";
import type { Store } from "../store/store.js";
import { DEFAULT_TENANT, findApiKey, keysEqual } from "../store/tenants.js";

export type Access = "public" | "tenant" | "admin";
const ACCESS_LEVELS: readonly Access[] = ["public", "tenant", "admin"];

export interface Principal {
  tenantId: string;
  keyId: string | null;
  admin: boolean;
}

/** A registered route and the access it declared (also the list the security fuzz test walks). */
export interface DeclaredRoute {
  method: string;
  url: string;
  access: Access;
}

declare module "fastify" {
  interface FastifyInstance {
    declaredRoutes: readonly DeclaredRoute[];
  }
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    access?: Access;
  }
}

/** Route options declaring who may call a route: `app.get(url, access("tenant"), handler)`. */
export const access = (level: Access) => ({ config: { access: level } });

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

/** One path segment of unreserved characters (RFC 3986), not `.` or `..`. */
const SEGMENT = /^[A-Za-z0-9._~-]+$/;

/** Whether a raw request target is origin-form with a canonical path (the query is not judged here). */
export function canonicalTarget(rawUrl: string): boolean {
  if (!rawUrl.startsWith("/")) return false; // absolute-form (`http://x/…`), authority-form, `*`
  const q = rawUrl.indexOf("?");
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  if (path === "/") return true;
  const segments = path.slice(1).split("/");
  // A trailing slash leaves one empty last segment: the router answers 404 for it, harmlessly.
  if (segments[segments.length - 1] === "") segments.pop();
  return segments.every((s) => SEGMENT.test(s) && s !== "." && s !== "..");
}

const nonCanonical = () =>
  new SluiceError(
    "invalid_url",
    "Request target must be an origin-form path without percent-encoding, dot segments or empty segments.",
    { status: 400, type: "invalid_request_error" },
  );

const adminOnly = () =>
  new SluiceError("permission_denied", "This endpoint requires an admin key.", {
    status: 403,
    type: "permission_error",
  });

/** The access a registered route declared; throws (the server does not start) when it has none. */
function declaredAccess(route: RouteOptions): Access {
  const level = (route.config as { access?: unknown } | undefined)?.access;
  if (typeof level === "string" && (ACCESS_LEVELS as readonly string[]).includes(level)) return level as Access;
  const methods = Array.isArray(route.method) ? route.method.join(",") : route.method;
  throw new Error(`Route ${methods} ${route.url} declares no access (public, tenant or admin).`);
}

/** Must be installed before any route is registered (the declaration check runs per route). */
export function installAuth(app: FastifyInstance, options: AuthOptions): void {
  app.decorateRequest("principal", null as unknown as Principal);
  const declared: DeclaredRoute[] = [];
  app.decorate("declaredRoutes", declared);
  app.addHook("onRoute", (route) => {
    const level = declaredAccess(route);
    for (const method of [route.method].flat()) declared.push({ method, url: route.url, access: level });
  });
  app.addHook("onRequest", async (request) => {
    if (!canonicalTarget(request.raw.url ?? "")) throw nonCanonical();
    // No route matched (the 404 handler has no declaration): a key is needed even to hear 404.
    const level = request.routeOptions.config.access ?? "tenant";
    if (level === "public") return;
    request.principal = await authenticate(request, options);
    if (level === "admin" && !request.principal.admin) throw adminOnly();
  });
}

async function authenticate(request: FastifyRequest, options: AuthOptions): Promise<Principal> {
  const token = bearerToken(request);
  if (token === undefined || token.length > 512) throw unauthorized();
  if (options.envKey !== undefined && keysEqual(token, options.envKey)) {
    return { tenantId: DEFAULT_TENANT, keyId: null, admin: true };
  }
  const record = await findApiKey(options.store, token);
  if (record === undefined) throw unauthorized();
  return { tenantId: record.tenantId, keyId: record.id, admin: record.admin };
}
