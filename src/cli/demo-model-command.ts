/** `sluice demo-model`: write the generated demo GGUF (random weights, for offline trials). */
import { stat } from "node:fs/promises";
import type { Command } from "commander";
import { fromFlag, integer } from "../config/setting.js";
import { writeDemoModel } from "../demo-model/demo-model.js";

interface DemoModelFlags {
  output: string;
  seed: string;
  f16: boolean;
}

export function registerDemoModelCommand(program: Command): void {
  program
    .command("demo-model")
    .description(
      "Write a tiny llama-architecture GGUF with random weights (it loads and runs; its output is gibberish)",
    )
    .option("-o, --output <path>", "where to write the model", "sluice-demo.gguf")
    .option("--seed <n>", "seed for the random weights", "1")
    .option("--f16", "store weight matrices as f16 instead of f32", false)
    .action(async (flags: DemoModelFlags) => {
      const seed = fromFlag("--seed", flags.seed, integer(0, 0xffffffff)) ?? 1;
      const path = await writeDemoModel(flags.output, { seed, tensorType: flags.f16 ? "f16" : "f32" });
      const { size } = await stat(path);
      process.stdout.write(`${path} (${(size / 1024 / 1024).toFixed(1)} MB)\n`);
    });
}
