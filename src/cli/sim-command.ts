/** `sluice sim`: run the OpenAI-compatible inference simulator (docs/simulator.md). */
import type { Command } from "commander";
import { ZodError } from "zod";
import { decimal, fromFlag, integer, type Setting } from "../config/setting.js";
import { ConfigError } from "../config.js";
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

const BIG = 1_000_000_000;
const count = integer(1, BIG);
const ms = decimal(0, 3_600_000, " ms");
const rate = decimal(0, 1);

/**
 * Flags → SimOptions, each flag checked as a number in its range (absent flags stay undefined:
 * schema defaults); what spans several flags (fault rates' sum, min ≤ max) is the schema's job.
 */
export function simOptionsFromFlags(f: SimFlags): SimOptions {
  const n = (flag: string, raw: string | undefined, setting: Setting<number>) => fromFlag(flag, raw, setting);
  return {
    host: f.host,
    port: n("--port", f.port, integer(0, 65535, "; 0 = any free port")),
    model: f.model,
    slots: n("--slots", f.slots, count),
    stepMs: n("--step-ms", f.stepMs, ms),
    stepGrowth: n("--step-growth", f.stepGrowth, decimal(0, 100)),
    prefillMsPerToken: n("--prefill-ms-per-token", f.prefillMsPerToken, ms),
    blockSize: n("--block-size", f.blockSize, count),
    cacheBlocks: n("--cache-blocks", f.cacheBlocks, integer(0, 10_000_000, "; 0 = off")),
    maxQueue: n("--max-queue", f.maxQueue, integer(0, BIG)),
    minOut: n("--min-out", f.minOut, count),
    maxOut: n("--max-out", f.maxOut, count),
    maxTokensCap: n("--max-tokens-cap", f.maxTokensCap, count),
    seed: n("--seed", f.seed, integer(-(2 ** 31), 2 ** 31 - 1)),
    zeroCost: f.zeroCost,
    faults: {
      error500: n("--fault-500", f.fault500, rate),
      error429: n("--fault-429", f.fault429, rate),
      reset: n("--fault-reset", f.faultReset, rate),
      hang: n("--fault-hang", f.faultHang, rate),
    },
  };
}

/** A schema path (`faults.error500`, `minOut`) → the flag that sets it. */
const flagOf = (path: (string | number)[]): string => {
  const last = String(path.at(-1) ?? "options");
  const fault: Record<string, string> = { error500: "500", error429: "429", reset: "reset", hang: "hang" };
  if (path[0] === "faults") return `--fault-${fault[last] ?? last}`;
  return `--${last.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
};

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
        const issue = err.issues[0];
        throw new ConfigError(
          issue === undefined ? "options" : flagOf(issue.path),
          issue?.message ?? "invalid",
          undefined,
        );
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
