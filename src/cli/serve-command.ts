/** `sluice serve` (API + in-process worker) and `sluice worker` (worker only, no HTTP). */

import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { Command } from "commander";
import { buildApi } from "../api/server.js";
import { probeBackends } from "../backends/startup-checks.js";
import { type CommonOptions, resolveConfig, resolveServer } from "../config.js";
import { SluiceError } from "../errors.js";
import { openRuntime, type Runtime, resolveRoutes } from "../runtime.js";
import { lockDataFolder } from "../store/folder-lock.js";
import { countActiveKeys, createApiKey, DEFAULT_TENANT } from "../store/tenants.js";
import { addCommonOptions, addExecutionOptions, type CommonCliFlags, type ExecutionCliFlags } from "./options.js";
import { startupConfig } from "./startup-config.js";

interface ServeFlags extends CommonCliFlags, ExecutionCliFlags {
  host?: string;
  port?: string;
  worker: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

/** SIGTERM/SIGINT → graceful stop; a second signal exits at once. */
export function onShutdownSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`sluice: ${signal} received, shutting down…\n`);
    stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", handler);
  process.on("SIGINT", handler);
}

/** Encryption at rest is opt-in: say so loudly when it is off. */
function warnIfPlaintext(common: CommonOptions): void {
  if (common.masterKeys !== undefined) return;
  process.stderr.write(
    "sluice: WARNING: no SLUICE_MASTER_KEY or SLUICE_MASTER_KEY_FILE: uploaded files, prompts and results are stored in PLAINTEXT (see docs/security.md).\n",
  );
}

export function registerServeCommands(program: Command): void {
  const serve = program
    .command("serve")
    .description("Run the OpenAI-compatible API server (with an in-process worker unless --no-worker)")
    .option("--host <host>", "interface to listen on (default 127.0.0.1)")
    .option("--port <port>", "port to listen on, 0 = any free port (env SLUICE_PORT, default 8080)")
    .option("--no-worker", "API only: leave execution to `sluice worker` processes")
    .option("--tls-cert <file>", "serve HTTPS with this certificate (PEM)")
    .option("--tls-key <file>", "private key for --tls-cert (PEM)");
  addExecutionOptions(addCommonOptions(serve)).action(async (flags: ServeFlags) => {
    const { common, execution } = resolveConfig(flags);
    const server = resolveServer(flags);
    if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
      throw new SluiceError("invalid_tls", "--tls-cert and --tls-key go together.");
    }
    // Engine settings are checked before the data folder is created (API-only replicas have none).
    const routes = flags.worker ? await resolveRoutes(execution) : undefined;
    warnIfPlaintext(common);
    // One process per SQLite folder (a second serve or run on it exits 2 naming the holder).
    if (common.store.kind === "sqlite") {
      await mkdir(dirname(common.store.path), { recursive: true });
      lockDataFolder(dirname(common.store.path));
    }
    const runtime = await openRuntime(common, {
      execution,
      ...(routes === undefined ? {} : { routes }),
      worker: flags.worker ? {} : false,
    });
    const listen = { host: server.host, port: server.port, tls: flags.tlsCert !== undefined, worker: flags.worker };
    runtime.ctx.logger.info(
      "sluice starting",
      startupConfig({
        command: "serve",
        common,
        execution,
        routes: routes?.routes,
        server: { ...listen, metricsAuth: server.metricsAuth },
      }),
    );
    // Probed while the server starts, not before: an engine still loading is a warning.
    if (routes !== undefined)
      void probeBackends(routes.routes, { keyFromEnv: execution.apiKeyFromEnv, logger: runtime.ctx.logger });
    const envKey = server.apiKey;
    if (envKey === undefined && (await countActiveKeys(runtime.ctx.store)) === 0) {
      const { key } = await createApiKey(runtime.ctx.store, { tenantId: DEFAULT_TENANT, admin: true });
      process.stdout.write(
        `Created an API key for the default tenant (shown once, stored only as a hash):\n  ${key}\n`,
      );
    }
    const https =
      flags.tlsCert !== undefined && flags.tlsKey !== undefined
        ? { cert: await readFile(flags.tlsCert), key: await readFile(flags.tlsKey) }
        : undefined;
    const app = await buildApi(runtime.ctx, {
      envKey,
      metricsAuth: server.metricsAuth,
      https,
    });
    const address = await app.listen({ host: server.host, port: server.port });
    runtime.worker?.start();
    process.stdout.write(`Sluice listening on ${address}/v1\n`);
    onShutdownSignal(async () => {
      // Requests in progress get a few seconds; keep-alive clients must not hold shutdown hostage.
      setTimeout(() => app.server.closeAllConnections(), 5000).unref();
      await app.close();
      await runtime.close();
    });
  });

  const worker = program.command("worker").description("Run a worker: execute batches from the shared store (no HTTP)");
  addExecutionOptions(addCommonOptions(worker)).action(async (flags: CommonCliFlags & ExecutionCliFlags) => {
    const { common, execution } = resolveConfig(flags);
    if (common.store.kind === "sqlite") {
      // SQLite's claims live in the one process that owns the store (store/claims/held-claims.ts).
      throw new SluiceError(
        "store_not_shared",
        "`sluice worker` needs a store shared between processes: PostgreSQL (--store postgres://…). With SQLite, `sluice serve` runs the worker in its own process.",
      );
    }
    const routes = await resolveRoutes(execution);
    warnIfPlaintext(common);
    const runtime: Runtime = await openRuntime(common, { execution, routes });
    runtime.ctx.logger.info(
      "sluice starting",
      startupConfig({ command: "worker", common, execution, routes: routes.routes }),
    );
    void probeBackends(routes.routes, { keyFromEnv: execution.apiKeyFromEnv, logger: runtime.ctx.logger });
    runtime.worker?.start();
    process.stdout.write(`Sluice worker ${runtime.worker?.id ?? ""} started\n`);
    onShutdownSignal(() => runtime.close());
  });
}
