/** The `sluice` command line: server, worker, one-shot runs, a client for a running server, tools. */
import { Command } from "commander";
import { SluiceError } from "../errors.js";
import { registerClientCommands } from "./client-commands.js";
import { registerRunCommand } from "./run-command.js";
import { registerServeCommands } from "./serve-command.js";

const program = new Command()
  .name("sluice")
  .description("Self-hosted batch inference: OpenAI-compatible Files + Batches API on your own engines")
  .version("0.1.0");

registerServeCommands(program);
registerRunCommand(program);
registerClientCommands(program);
for (const optional of ["./sim-command.js", "./demo-model-command.js", "./keys-command.js"]) {
  // Tool commands register themselves when present in this build.
  const mod = (await import(optional).catch(() => ({}))) as Record<string, unknown>;
  for (const [name, fn] of Object.entries(mod)) {
    if (name.startsWith("register") && typeof fn === "function") (fn as (p: Command) => void)(program);
  }
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const message = err instanceof SluiceError ? `${err.message} (${err.code})` : (err as Error).message;
  process.stderr.write(`sluice: ${message}\n`);
  process.exit(2);
}
