/** Simulator options: validated once here; everything below receives the resolved, typed form. */
import { z } from "zod";

const rate = z.number().min(0).max(1);

const faultsSchema = z
  .object({
    error500: rate.default(0),
    error429: rate.default(0),
    reset: rate.default(0),
    hang: rate.default(0),
    /** retry-after-ms sent with injected 429s. */
    retryAfterMs: z.number().int().min(0).default(100),
  })
  .strict()
  .refine((f) => f.error500 + f.error429 + f.reset + f.hang <= 1, {
    message: "fault rates must sum to at most 1",
  });

export const simOptionsSchema = z
  .object({
    host: z.string().min(1).default("127.0.0.1"),
    port: z.number().int().min(0).max(65535).default(0),
    model: z.string().min(1).default("sluice-sim"),
    slots: z.number().int().min(1).default(8),
    stepMs: z.number().min(0).default(10),
    /**
     * How much slower a decode step gets as the batch fills, like a real engine past its
     * memory-bound regime: a sequence admitted while `r` of `slots` run decodes at
     * stepMs × (1 + stepGrowth × r / slots) per token. 0 (default) = flat step time.
     */
    stepGrowth: z.number().min(0).max(100).default(0),
    prefillMsPerToken: z.number().min(0).default(0.1),
    blockSize: z.number().int().min(1).default(16),
    /** Prefix-cache capacity in blocks; 0 disables the cache. */
    cacheBlocks: z.number().int().min(0).max(10_000_000).default(4096),
    /** Waiting-queue limit: beyond it requests get 429. Absent = unbounded. */
    maxQueue: z.number().int().min(0).optional(),
    faults: faultsSchema.default({}),
    seed: z.number().int().default(1),
    minOut: z.number().int().min(1).default(16),
    maxOut: z.number().int().min(1).default(256),
    maxTokensCap: z.number().int().min(1).default(4096),
    /** All costs 0 and slots effectively unlimited: measures the client's own overhead. */
    zeroCost: z.boolean().default(false),
  })
  .strict()
  .refine((o) => o.minOut <= o.maxOut, { message: "minOut must be <= maxOut", path: ["minOut"] });

export type SimOptions = z.input<typeof simOptionsSchema>;
export type FaultRates = z.output<typeof faultsSchema>;

export interface ResolvedSimOptions extends Omit<z.output<typeof simOptionsSchema>, "maxQueue"> {
  maxQueue: number | undefined;
}

// "Effectively unlimited": large enough that no benchmark reaches it, finite so /stats stays JSON.
export const ZERO_COST_SLOTS = 1_000_000;

/** Validates options (throws a ZodError on bad input) and applies zero-cost mode. */
export function resolveSimOptions(input: SimOptions = {}): ResolvedSimOptions {
  const parsed = simOptionsSchema.parse(input);
  const resolved: ResolvedSimOptions = { ...parsed, maxQueue: parsed.maxQueue };
  if (!parsed.zeroCost) return resolved;
  return { ...resolved, stepMs: 0, prefillMsPerToken: 0, slots: ZERO_COST_SLOTS };
}
