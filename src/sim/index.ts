/**
 * `sluice sim`: an OpenAI-compatible inference-engine simulator with continuous batching, an LRU
 * prefix cache, a bounded waiting queue, seeded faults and a provable lower bound on makespan.
 * See docs/simulator.md.
 */
import { listen } from "./http-server.js";
import { resolveSimOptions, type SimOptions } from "./options.js";
import { Simulator } from "./simulator.js";
import type { SimStats } from "./stats.js";

export type { LowerBoundSnapshot } from "./lower-bound.js";
export type { FaultRates, ResolvedSimOptions, SimOptions } from "./options.js";
export { resolveSimOptions, ZERO_COST_SLOTS } from "./options.js";
export type { SimStats } from "./stats.js";

export interface RunningSimulator {
  /** Base URL, e.g. http://127.0.0.1:41234 (append /v1/... for the OpenAI endpoints). */
  url: string;
  stats(): SimStats;
  /** Same as POST /stats/reset: new measurement window, cold prefix cache, fault draws restarted. */
  reset(): void;
  /** Stops timers and drops every open connection (hung and in-flight requests included). Idempotent. */
  close(): Promise<void>;
}

/** Validates `options` (throws a ZodError when invalid) and starts a listening simulator. */
export async function startSimulator(options: SimOptions = {}): Promise<RunningSimulator> {
  const opts = resolveSimOptions(options);
  const sim = new Simulator(opts);
  const server = await listen(sim, opts.host, opts.port);
  return {
    url: server.url,
    stats: () => sim.stats(),
    reset: () => sim.reset(),
    close: async () => {
      sim.stop();
      await server.close();
    },
  };
}
