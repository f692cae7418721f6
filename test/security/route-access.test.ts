/**
 * Route × path variant × principal: only the intended principal ever gets past the router.
 *
 * The walk covers every route the API registers (read from the server itself, so a new route is
 * covered without editing this file), each under the literal path and under variants an attacker
 * uses to make a path match a route while a URL test misses it: any one character
 * percent-encoded (upper- and lower-case hex, `/` included), case changes, doubled slashes, dot
 * segments (plain and encoded), a backslash, a trailing slash and an absolute-form target; each
 * with no key, a tenant's key and an admin key. Requests are sent raw (node:http), byte for byte:
 * fetch would normalise the very paths under test.
 *
 * The oracle does not use the server's own URL check: variants built to be non-canonical must be
 * refused (400) whoever sends them; the others are matched against the route table here, and the
 * principal must be refused (401 without a key, 403 for a tenant key on an admin route) exactly
 * when the matched route's declared access is above it; a path no route matches needs a key first.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeclaredRoute } from "../../src/api/auth.js";
import { startSluice, type TestServer } from "../helpers/server.js";
import { type TenantKey, tenantKey } from "../helpers/tenants.js";

let s: TestServer;
let tenant: TenantKey;
let admin: TenantKey;
let origin: URL;

beforeAll(async () => {
  // Rate limiting off: thousands of requests from three keys in a few seconds are the point here.
  s = await startSluice({ worker: false, limits: { rateLimitPerSecond: 0 } });
  origin = new URL(s.baseURL);
  tenant = await tenantKey(s, "tenant-a");
  admin = await tenantKey(s, "ops", true);
});
afterAll(() => s.close());

interface Answer {
  status: number;
}

/**
 * Sends `target` exactly as given as the request target, over a raw socket (`Connection: close`),
 * and reads the status line: node's own HTTP client trips over some refusals this walk provokes.
 */
function raw(method: string, target: string, key: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const hasBody = method === "POST" || method === "PUT" || method === "PATCH";
    const head = [`${method} ${target} HTTP/1.1`, `Host: ${origin.host}`, "Connection: close"];
    if (key !== undefined) head.push(`Authorization: Bearer ${key}`);
    if (hasBody) head.push("Content-Type: application/json", "Content-Length: 2");
    const socket = connect(Number(origin.port), origin.hostname, () =>
      socket.write(`${head.join("\r\n")}\r\n\r\n${hasBody ? "{}" : ""}`),
    );
    let received = "";
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => {
      if (received.length < 64) received += d;
    });
    socket.on("error", reject);
    socket.on("close", () => {
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(received);
      if (m === null) reject(new Error(`no status line: ${JSON.stringify(received.slice(0, 40))}`));
      else resolve({ status: Number(m[1]) });
    });
  });
}

/** A concrete path for a route pattern: ids that look valid but name nothing. */
const concrete = (url: string) =>
  url.replace(/:name/g, "no-such-tenant").replace(/:([A-Za-z]+)/g, (_m, p: string) => `${p}_0000000000000000`);

const encode = (c: string, lower: boolean) => {
  const hex = c.charCodeAt(0).toString(16).padStart(2, "0");
  return `%${lower ? hex : hex.toUpperCase()}`;
};

interface Variant {
  target: string;
  /** Built to be non-canonical: must be refused with 400, whoever sends it. */
  refused: boolean;
}

function variants(path: string): Variant[] {
  const out: Variant[] = [{ target: path, refused: false }];
  const refuse = (target: string) => out.push({ target, refused: true });
  for (let i = 0; i < path.length; i++) {
    const c = path[i] ?? "";
    for (const lower of [false, true]) refuse(`${path.slice(0, i)}${encode(c, lower)}${path.slice(i + 1)}`);
  }
  const slashes = [...path.matchAll(/\//g)].map((m) => m.index);
  for (const at of slashes) {
    refuse(`${path.slice(0, at)}//${path.slice(at + 1)}`);
    refuse(`${path.slice(0, at)}/./${path.slice(at + 1)}`);
    refuse(`${path.slice(0, at)}/x/../${path.slice(at + 1)}`);
    refuse(`${path.slice(0, at)}/%2e/${path.slice(at + 1)}`);
    refuse(`${path.slice(0, at)}/x/%2E%2E/${path.slice(at + 1)}`);
    if (at > 0) refuse(`${path.slice(0, at)}\\${path.slice(at + 1)}`);
  }
  refuse(`${path}/.`);
  refuse(`${path}/..`);
  refuse(`http://x${path}`);
  refuse(`HTTP://127.0.0.1${path}`);
  out.push({ target: path.toUpperCase(), refused: false });
  out.push({ target: path.replace(/\/([a-z])/g, (_m, c: string) => `/${c.toUpperCase()}`), refused: false });
  out.push({ target: `${path}/`, refused: false });
  out.push({ target: `${path}?x=%2F..%2F`, refused: false });
  return out;
}

/** The route a canonical path matches, by the table (params match one non-empty segment). */
function matchRoute(routes: readonly DeclaredRoute[], method: string, target: string): DeclaredRoute | undefined {
  const path = target.split("?")[0] ?? "";
  const segs = path.split("/");
  return routes.find((r) => {
    if (r.method !== method) return false;
    const rs = r.url.split("/");
    return (
      rs.length === segs.length && rs.every((p, i) => (p.startsWith(":") ? (segs[i] ?? "") !== "" : p === segs[i]))
    );
  });
}

const RANK = { public: 0, tenant: 1, admin: 2 } as const;

describe("route access, every route × path variant × principal", () => {
  it("registers only routes with a declared access, /health alone public", () => {
    expect(s.routes.length).toBeGreaterThan(15);
    const publicRoutes = s.routes.filter((r) => r.access === "public").map((r) => r.url);
    expect(new Set(publicRoutes)).toEqual(new Set(["/health"]));
    expect(s.routes.filter((r) => r.url.startsWith("/v1/admin")).every((r) => r.access === "admin")).toBe(true);
    expect(s.routes.find((r) => r.url === "/metrics")?.access).toBe("admin");
  });

  it("lets through only the principal each matched route declares", async () => {
    const principals = [
      { name: "none", key: undefined, rank: 0 },
      { name: "tenant", key: tenant.key, rank: 1 },
      { name: "admin", key: admin.key, rank: 2 },
    ] as const;
    const failures: string[] = [];
    let sent = 0;
    for (const route of s.routes) {
      for (const v of variants(concrete(route.url))) {
        for (const p of principals) {
          const { status } = await raw(route.method, v.target, p.key).catch((err: Error) => {
            throw new Error(`${route.method} ${v.target} as ${p.name}: ${err.message}`);
          });
          sent++;
          const matched = v.refused ? undefined : matchRoute(s.routes, route.method, v.target);
          // Deny by default: a path that matches no route needs a key before it hears 404.
          const needed = RANK[matched?.access ?? "tenant"];
          let ok: boolean;
          if (v.refused) ok = status === 400;
          else if (p.rank < needed) ok = status === (p.key === undefined ? 401 : 403);
          else if (matched === undefined) ok = status === 404;
          else ok = status !== 401 && status !== 403 && status < 500;
          if (!ok) failures.push(`${route.method} ${v.target} as ${p.name} → ${status}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(sent).toBeGreaterThan(3000);
  });
});
