/** The `sluice` command line: server, worker, one-shot runs, a client for a running server, tools. */
import { Command } from "commander";
import { ConfigError } from "../config.js";
import { SluiceError } from "../errors.js";
import { registerClientCommands } from "./client-commands.js";
import { registerDemoModelCommand } from "./demo-model-command.js";
import { registerKeysCommand } from "./keys-command.js";
import { registerRunCommand } from "./run-command.js";
import { registerServeCommands } from "./serve-command.js";
import { registerSimCommand } from "./sim-command.js";
import { registerTenantsCommand } from "./tenants-command.js";

const program = new Command()
  .name("sluice")
  .description("Self-hosted batch inference: OpenAI-compatible Files + Batches API on your own engines")
  .version("0.1.0");

for (const register of [
  registerServeCommands,
  registerRunCommand,
  registerClientCommands,
  registerSimCommand,
  registerDemoModelCommand,
  registerKeysCommand,
  registerTenantsCommand,
]) {
  register(program);
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // A bad setting is one line naming it, the value and what is accepted: the message says it all.
  const message =
    err instanceof ConfigError
      ? err.message
      : err instanceof SluiceError
        ? `${err.message} (${err.code})`
        : (err as Error).message;
  process.stderr.write(`sluice: ${message}\n`);
  process.exit(2);
}
