/**
 * Defaults for threads and parallel sequences. Batched decoding is where a local engine gets its
 * throughput: N sequences decode in one llama.cpp batch for little more than the cost of one, until
 * compute runs out. Each sequence costs its own KV cache, so N is bounded by memory.
 */
import { availableParallelism, freemem } from "node:os";

/** Upper bound on the default sequence count; beyond it scheduling overhead outweighs batching gains. */
export const DEFAULT_MAX_SEQUENCES = 32;
/** Share of free memory the sequences' KV caches may take by default. */
const MEMORY_SHARE = 0.5;
/** Per-sequence context cap by default; longer contexts must be asked for (`contextSize`). */
export const DEFAULT_CONTEXT_SIZE_CAP = 4096;

/**
 * One thread per core but one: llama.cpp's threads spin while waiting, so oversubscribing the
 * cores (or starving the event loop that feeds the batches) costs far more than an idle core.
 */
export function defaultThreads(cores: number = availableParallelism()): number {
  return Math.max(1, cores - 1);
}

export interface SequencePlanInput {
  /** Memory one more sequence adds (its KV cache), bytes. */
  perSequenceBytes: number;
  /** Memory a one-sequence context needs besides that (compute buffers), bytes. */
  fixedBytes: number;
  /** Free memory where the context lives (VRAM when offloaded, else RAM), bytes. */
  freeBytes: number;
  cap?: number;
}

/** How many sequences fit in a share of free memory, clamped to [1, cap]. */
export function planSequences(input: SequencePlanInput): number {
  const cap = input.cap ?? DEFAULT_MAX_SEQUENCES;
  if (input.perSequenceBytes <= 0) return cap;
  const budget = input.freeBytes * MEMORY_SHARE - input.fixedBytes;
  return Math.max(1, Math.min(cap, Math.floor(budget / input.perSequenceBytes)));
}

/** The part of node-llama-cpp's model/llama objects the estimate needs. */
export interface MemoryProbe {
  gpuLayers: number;
  estimateContextBytes(contextSize: number, sequences: number): Promise<{ cpuRam: number; gpuVram: number }>;
  freeVramBytes(): Promise<number>;
}

/** Sequence count for a context of `contextSize` tokens per sequence, from the model's own estimate. */
export async function chooseSequences(probe: MemoryProbe, contextSize: number, cap?: number): Promise<number> {
  const onGpu = probe.gpuLayers > 0;
  const pick = (r: { cpuRam: number; gpuVram: number }) => (onGpu ? r.gpuVram : r.cpuRam);
  const one = pick(await probe.estimateContextBytes(contextSize, 1));
  const two = pick(await probe.estimateContextBytes(contextSize, 2));
  const perSequenceBytes = Math.max(0, two - one);
  const freeBytes = onGpu ? await probe.freeVramBytes() : freemem();
  return planSequences({
    perSequenceBytes,
    fixedBytes: Math.max(0, one - perSequenceBytes),
    freeBytes,
    ...(cap !== undefined ? { cap } : {}),
  });
}
