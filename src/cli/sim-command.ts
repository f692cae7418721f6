/** `sluice sim`: run the OpenAI-compatible inference simulator (docs/simulator.md). */
import type { Command } from "commander";
import { ZodError } from "zod";
import { invalidRequest } from "../errors.js";
import { type SimOptions, startSimulator } from "../sim/index.js";

interface SimFlags {
  host: string;
  port: string;
  model?: string;
  slots?: string;
  stepMs?: string;
  stepGrowth?: string;
  prefillMsPerToken?: string;
  blockSize?: string;
  cacheBlocks?: string;
  maxQueue?: string;
  minOut?: string;
  maxOut?: string;
  maxTokensCap?: string;
  fault500: string;
  fault429: string;
  faultReset: string;
  faultHang: string;
  seed: string;
  zeroCost: boolean;
}

const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

/** Flags → SimOptions (absent flags stay undefined: schema defaults); validation is the schema's job. */
export function simOptionsFromFlags(f: SimFlags): SimOptions {
  return {
    host: f.host,
    port: Number(f.port),
    model: f.model,
    slots: num(f.slots),
    stepMs: num(f.stepMs),
    stepGrowth: num(f.stepGrowth),
    prefillMsPerToken: num(f.prefillMsPerToken),
    blockSize: num(f.blockSize),
    cacheBlocks: num(f.cacheBlocks),
    maxQueue: num(f.maxQueue),
    minOut: num(f.minOut),
    maxOut: num(f.maxOut),
    maxTokensCap: num(f.maxTokensCap),
    seed: Number(f.seed),
    zeroCost: f.zeroCost,
    faults: {
      error500: Number(f.fault500),
      error429: Number(f.fault429),
      reset: Number(f.faultReset),
      hang: Number(f.faultHang),
    },
  };
}

export function registerSimCommand(program: Command): void {
  program
    .command("sim")
    .description("Run an OpenAI-compatible inference-engine simulator (for benchmarks, demos, capacity planning)")
    .option("--host <host>", "interface to listen on", "127.0.0.1")
    .option("--port <port>", "port to listen on (0 = any free port)", "8000")
    .option("--model <id>", "model id listed by /v1/models (default sluice-sim)")
    .option("--slots <n>", "concurrent sequences (continuous-batching slots) (default 8)")
    .option("--step-ms <ms>", "decode time per token per sequence (default 10)")
    .option("--step-growth <x>", "step time grows by x at a full batch: stepMs × (1 + x·running/slots) (default 0)")
    .option("--prefill-ms-per-token <ms>", "prefill time per uncached prompt token (default 0.1)")
    .option("--block-size <tokens>", "prefix-cache block size in tokens (default 16)")
    .option("--cache-blocks <n>", "prefix-cache capacity in blocks, 0 = off (default 4096)")
    .option("--max-queue <n>", "waiting-queue limit; beyond it answer 429 (default unbounded)")
    .option("--min-out <tokens>", "shortest completion when max_tokens is absent (default 16)")
    .option("--max-out <tokens>", "longest completion when max_tokens is absent (default 256)")
    .option("--max-tokens-cap <tokens>", "cap on any completion length (default 4096)")
    .option("--fault-500 <rate>", "fraction of requests answered 500", "0")
    .option("--fault-429 <rate>", "fraction of requests answered 429", "0")
    .option("--fault-reset <rate>", "fraction of requests whose connection is reset", "0")
    .option("--fault-hang <rate>", "fraction of requests never answered", "0")
    .option("--seed <n>", "seed for outputs and faults", "1")
    .option("--zero-cost", "all costs 0, unlimited slots: measures the client's own overhead", false)
    .action(async (flags: SimFlags) => {
      let sim: Awaited<ReturnType<typeof startSimulator>>;
      try {
        sim = await startSimulator(simOptionsFromFlags(flags));
      } catch (err) {
        if (!(err instanceof ZodError)) throw err;
        const detail = err.issues.map((i) => `${i.path.join(".") || "options"}: ${i.message}`).join("; ");
        throw invalidRequest(`Invalid simulator options: ${detail}`);
      }
      process.stdout.write(`Sluice simulator listening on ${sim.url} (OpenAI API under ${sim.url}/v1)\n`);
      let stopping = false;
      const stop = (signal: NodeJS.Signals) => {
        if (stopping) process.exit(130);
        stopping = true;
        process.stderr.write(`sluice sim: ${signal} received, shutting down…\n`);
        sim.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
}
