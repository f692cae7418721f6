/**
 * Router: model name → a pool of backend replicas, by exact name or glob (`*`, `?`), first match
 * wins. Backends are created lazily on first use (an embedded model loads only when a batch
 * needs it) and each replica carries its own flow controller, circuit breaker (an engine that is
 * away gets no calls until a probe finds it back, then restarts from slow start) and learned
 * call timeout.
 */

import { CallTimeout } from "../flow/call-timeout.js";
import { type BreakerChange, type BreakerOptions, CircuitBreaker } from "../flow/circuit-breaker.js";
import { clientLoadMeter } from "../flow/client-load.js";
import { FlowController, type FlowOptions } from "../flow/flow-control.js";
import type { Backend } from "./backend.js";
import type { BackendSpec, RouteSpec } from "./route-config.js";

export type BackendFactory = (spec: BackendSpec) => Promise<Backend>;

export interface Replica {
  backend: Backend;
  flow: FlowController;
  breaker: CircuitBreaker;
  timeout: CallTimeout;
}

export class BackendPool {
  readonly replicas: Replica[];
  /** The route's patterns, for log lines ("no engine for 'llama-3*' is reachable"). */
  readonly patterns: readonly string[];
  constructor(replicas: Replica[], patterns: readonly string[] = []) {
    this.replicas = replicas;
    this.patterns = patterns;
  }

  /** The replica with the most free capacity among those that take calls, or undefined. */
  pick(): Replica | undefined {
    let best: Replica | undefined;
    for (const r of this.replicas) {
      if (!r.breaker.allows) continue;
      if (r.flow.available() > 0 && (best === undefined || r.flow.available() > best.flow.available())) best = r;
    }
    return best;
  }

  /** Whether some replica takes calls (false: every one is down and being probed). */
  get healthy(): boolean {
    return this.replicas.some((r) => r.breaker.allows);
  }

  /** Since when the pool has had no replica taking calls (ms), or null. */
  downSinceMs(): number | null {
    if (this.healthy) return null;
    return Math.min(...this.replicas.map((r) => r.breaker.downSinceMs ?? Date.now()));
  }

  capacity(): number {
    return this.replicas.reduce((sum, r) => sum + (r.breaker.allows ? r.flow.limit : 0), 0);
  }
}

/** A replica's breaker changed state. */
export interface HealthChange extends BreakerChange {
  backend: string;
  pool: BackendPool;
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

/** Distinct model names whose route is remembered. */
export const ROUTE_CACHE_SIZE = 1024;

interface CompiledRoute {
  matchers: RegExp[];
  spec: RouteSpec;
  pool?: Promise<BackendPool>;
  /** The pool once created: the hot path takes it without a promise per request. */
  ready?: BackendPool;
}

export class Router {
  readonly #routes: CompiledRoute[];
  readonly #factory: BackendFactory;
  readonly #flow: Partial<FlowOptions>;
  readonly #breaker: Partial<BreakerOptions>;
  readonly #breakers: CircuitBreaker[] = [];
  readonly #replicas: Replica[] = [];
  /** Model name → its route (null: none). Bounded: model names come from tenants' input lines. */
  readonly #byModel = new Map<string, CompiledRoute | null>();
  readonly #created: Backend[] = [];
  onFlowChange: ((backend: string, limit: number, inFlight: number, reason: string) => void) | undefined;
  /** A replica was created (its breaker may start open: another worker knows it is down). */
  onReplicaCreated: ((replica: Replica) => void) | undefined;
  /** A replica went down, came back on probation, or is serving again. */
  onHealthChange: ((change: HealthChange) => void) | undefined;

  constructor(
    routes: RouteSpec[],
    factory: BackendFactory,
    flow: Partial<FlowOptions> = {},
    breaker: Partial<BreakerOptions> = {},
  ) {
    this.#routes = routes.map((spec) => ({ spec, matchers: spec.patterns.map(globToRegExp) }));
    this.#factory = factory;
    this.#flow = flow;
    this.#breaker = breaker;
  }

  /**
   * The route of a model, through an LRU of ROUTE_CACHE_SIZE names (Map order = recency). Every
   * distinct name used to stay cached forever: batches of 2 MiB model names grew RSS by 400 MB.
   * A hit is moved to the back only once the cache is half full, so the usual handful of models
   * costs one lookup per request; a name hit at all during the last half-cache of insertions is
   * therefore never the one evicted.
   */
  #route(model: string): CompiledRoute | null {
    const cache = this.#byModel;
    let hit = cache.get(model);
    if (hit === undefined) {
      hit = this.#routes.find((r) => r.matchers.some((m) => m.test(model))) ?? null;
      if (cache.size >= ROUTE_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      cache.set(model, hit);
    } else if (cache.size > ROUTE_CACHE_SIZE / 2) {
      cache.delete(model);
      cache.set(model, hit);
    }
    return hit;
  }

  /** Model names cached now (for tests and metrics). */
  get cachedModels(): number {
    return this.#byModel.size;
  }

  hasRoute(model: string): boolean {
    return this.#route(model) !== null;
  }

  /** The pool for a model, created on first use; undefined when no route matches. */
  /** Whether some route serves `model` (without creating its backends). */
  routes(model: string): boolean {
    return this.#route(model) !== null;
  }

  /**
   * What serves `model`, as a stable text: the matched route's backends (engine and URL, or the
   * embedded model's spec), no keys or headers. Part of each line's reuse key: a changed model
   * behind a name must not serve old answers. "none" without a route.
   */
  identity(model: string): string {
    const route = this.#route(model);
    if (route === null) return "none";
    return JSON.stringify(
      route.spec.backends.map((b) => (b.engine === "llama-cpp" ? ["llama-cpp", b.model] : ["openai", b.url])),
    );
  }

  /** Whether one route serves every model (a `*` pattern): no model can lack a route. */
  get servesEveryModel(): boolean {
    return this.#routes.some((r) => r.spec.patterns.includes("*"));
  }

  pool(model: string): Promise<BackendPool> | undefined {
    const route = this.#route(model);
    if (route === null) return undefined;
    route.pool ??= this.#createPool(route.spec).then((pool) => {
      route.ready = pool;
      return pool;
    });
    return route.pool;
  }

  /** The model's pool if it is already created (no promise); undefined otherwise. */
  readyPool(model: string): BackendPool | undefined {
    return this.#route(model)?.ready;
  }

  async #createPool(spec: RouteSpec): Promise<BackendPool> {
    const replicas: Replica[] = [];
    const pool = new BackendPool(replicas, spec.patterns);
    for (const b of spec.backends) {
      const backend = await this.#factory(b);
      this.#created.push(backend);
      const maxLimit = backend.maxConcurrency ?? this.#flow.maxLimit ?? 1024;
      const flow = new FlowController(
        { ...this.#flow, maxLimit, initialLimit: Math.min(this.#flow.initialLimit ?? 4, maxLimit) },
        Date.now,
        clientLoadMeter(),
      );
      flow.onChange = (s, reason) => this.onFlowChange?.(backend.name, s.limit, s.inFlight, reason);
      // Without a probe (the embedded engine) the half-open trial call is the probe.
      const probe = backend.probe?.bind(backend) ?? (async () => ({ ok: true as const }));
      const breaker = new CircuitBreaker(probe, this.#breaker);
      breaker.onChange = (change) => {
        if (change.state === "half-open") flow.restart("resume");
        this.onHealthChange?.({ ...change, backend: backend.name, pool });
      };
      this.#breakers.push(breaker);
      const replica = { backend, flow, breaker, timeout: new CallTimeout() };
      replicas.push(replica);
      this.#replicas.push(replica);
      this.onReplicaCreated?.(replica);
    }
    return pool;
  }

  /** Every replica created so far (for sharing their health with other workers). */
  replicas(): Replica[] {
    return this.#replicas;
  }

  async close(): Promise<void> {
    for (const b of this.#breakers.splice(0)) b.close();
    const results = await Promise.allSettled(this.#created.map((b) => b.close()));
    this.#created.length = 0;
    for (const r of results) if (r.status === "rejected") throw r.reason;
  }
}
