/**
 * `sluice run INPUT -o OUTPUT`: the one-shot replacement for `vllm run-batch`. The same engine runs
 * on an embedded store in a work folder (default `.sluice-run/<hash of input+output paths>`), so
 * rerunning the same command resumes an interrupted batch, retries the lines that failed (the
 * others are kept), or starts a new batch when the input was edited (run-state.ts); `--fresh`
 * starts over. The folder is removed once every line succeeded, unless `--keep-work-dir`.
 * OUTPUT gets every line (successes and errors) in input order; exit code 1 when any line failed;
 * a file refused at validation writes no OUTPUT at all (exit 2).
 */

import { createReadStream } from "node:fs";
import { mkdir, rename } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { probeBackends } from "../backends/startup-checks.js";
import { isTerminal } from "../batch/lifecycle.js";
import { writeFinishedFile } from "../batch/result-stream.js";
import { type CommonOptions, resolveRunConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import { createLogger } from "../logger.js";
import { openRuntime, type Runtime, resolveRoutes } from "../runtime.js";
import { type BatchRow, getBatch } from "../store/batches.js";
import { lockDataFolder } from "../store/folder-lock.js";
import { DEFAULT_TENANT } from "../store/tenants.js";
import { checkModelsRouted } from "./model-check.js";
import { addExecutionOptions, type ExecutionCliFlags } from "./options.js";
import { createProgress, shownStatus } from "./progress.js";
import { planRun, prepareBatch, type RunPlan, restorePrevious } from "./run-state.js";
import { onShutdownSignal } from "./serve-command.js";
import { startupConfig } from "./startup-config.js";
import { emptyWorkFolder, folderBytes, formatBytes, removeWorkFolder, workFolderFor } from "./work-folder.js";

interface RunFlags extends ExecutionCliFlags {
  output: string;
  workDir?: string;
  endpoint?: string;
  window?: string;
  json?: boolean;
  logLevel?: string;
  fresh?: boolean;
  keepWorkDir?: boolean;
}

async function detectEndpoint(path: string): Promise<string> {
  const rl = (await import("node:readline")).createInterface({ input: createReadStream(path, { end: 1024 * 1024 }) });
  try {
    for await (const line of rl) {
      if (line.trim() === "") continue;
      const url = (JSON.parse(line.replace(/^\uFEFF/, "")) as { url?: unknown }).url;
      return typeof url === "string" ? url : "/v1/chat/completions";
    }
  } catch {
    // Validation reports the broken line with its number.
  } finally {
    rl.close();
  }
  return "/v1/chat/completions";
}

/** What this run is about to do, before it validates anything. */
function announcePlan(plan: RunPlan, workDir: string, output: string): void {
  if (plan.reason === "resume") process.stderr.write(`Resuming batch ${plan.batchId} from ${workDir}\n`);
  else if (plan.reason === "done")
    process.stderr.write(`Every line of the last run succeeded: writing ${output} again from ${workDir}\n`);
  else if (plan.reason === "edited")
    process.stderr.write(`The input changed since the last run: starting a new batch in ${workDir}\n`);
}

/** How many lines the previous run answered for this one (after validation, before the worker). */
async function announceCarried(rt: Runtime, plan: RunPlan, carried: number, workDir: string): Promise<void> {
  const b = await getBatch(rt.ctx.store, DEFAULT_TENANT, plan.batchId);
  if (b === undefined || b.status === "failed" || plan.previous === undefined) return;
  const toRun = Number(b.total) - carried;
  if (plan.reason === "retry")
    process.stderr.write(`Retrying ${toRun} failed lines of the last run (${carried} kept) in ${workDir}\n`);
  else process.stderr.write(`${carried} unchanged lines of the last run kept, ${toRun} to run\n`);
}

async function waitForEnd(rt: Runtime, batchId: string, quiet: boolean): Promise<BatchRow> {
  const bar = quiet ? undefined : createProgress();
  let toldWaiting = quiet;
  try {
    for (;;) {
      const b = await getBatch(rt.ctx.store, DEFAULT_TENANT, batchId);
      if (b === undefined) throw new SluiceError("batch_missing", `Batch ${batchId} disappeared from the work folder.`);
      const done = Number(b.completed) + Number(b.failed);
      bar?.update(done, Number(b.failed), Number(b.total), shownStatus(b.status, b.waiting_since));
      if (b.status === "in_progress" && b.waiting_since !== null && !toldWaiting) {
        toldWaiting = true;
        process.stderr.write(
          "No engine for this batch's model answers (the warning above names its URL): the run waits for it, up to its --window (30d by default). Ctrl-C stops; rerunning the same command resumes.\n",
        );
      }
      if (isTerminal(b.status)) return b;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    bar?.stop();
  }
}

export function registerRunCommand(program: Command): void {
  const cmd = program
    .command("run <input>")
    .description("Run a batch file locally and write the results (rerun the same command to resume or retry)")
    .requiredOption("-o, --output <file>", "where to write result lines (input order)")
    .option("--work-dir <dir>", "work folder holding the run's state (default .sluice-run/<hash>)")
    .option("--fresh", "discard the work folder's state and run every line again")
    .option("--keep-work-dir", "keep the work folder after a run where every line succeeded")
    .option("--endpoint <url>", "batch endpoint (default: the first line's url)")
    .option("--window <duration>", "completion window (default 30d)")
    .option("--json", "print the final Batch object as JSON")
    .option("--log-level <level>", "debug | info | warn | error | silent (env SLUICE_LOG_LEVEL, default warn)");
  addExecutionOptions(cmd).action(async (inputArg: string, flags: RunFlags) => {
    // Every setting is checked before anything is created.
    const { execution, window, ...settings } = resolveRunConfig(flags);
    const input = resolve(inputArg);
    const output = resolve(flags.output);
    const folder = workFolderFor(input, output, flags.workDir);
    const workDir = folder.path;
    // Every model of the file has an engine, or nothing is created (no work folder, no output).
    // Engine settings are checked first (backends/startup-checks.ts), then every model has a route.
    const routes = await resolveRoutes(execution);
    await checkModelsRouted(input, routes.routes, execution.backend === undefined ? execution.configFile : undefined);
    await mkdir(workDir, { recursive: true });
    const lock = lockDataFolder(workDir); // two runs of the same command must not both run the batch
    if (flags.fresh) {
      await emptyWorkFolder(workDir);
      process.stderr.write(`Starting over (--fresh): the earlier state in ${workDir} was deleted\n`);
    }
    process.stderr.write(`Work folder ${workDir} (${formatBytes(await folderBytes(workDir))})\n`);
    const common: CommonOptions = {
      dataDir: workDir,
      store: { kind: "sqlite", path: join(workDir, "sluice.db") },
      ...settings,
    };
    const rt = await openRuntime(
      common,
      // The `-o` file is written from the store below: the batch needs no output files of its own.
      { execution, routes, logger: createLogger(settings.logLevel), worker: { outputFiles: false } },
    );
    rt.ctx.logger.info("sluice starting", startupConfig({ command: "run", common, execution, routes: routes.routes }));
    // Not awaited: the batch starts meanwhile; an engine that does not answer is a warning line.
    void probeBackends(routes.routes, { keyFromEnv: execution.apiKeyFromEnv, logger: rt.ctx.logger });
    onShutdownSignal(async () => {
      await rt.close();
      process.stderr.write(`Interrupted. Rerun the same command to continue (state in ${workDir}).\n`);
      process.exit(130);
    });
    let removeFolder = false;
    try {
      const plan = await planRun(rt, workDir, input, { endpoint: flags.endpoint, window, detectEndpoint });
      announcePlan(plan, workDir, output);
      const carried = await prepareBatch(rt, workDir, plan);
      await announceCarried(rt, plan, carried, workDir);
      rt.worker?.start();
      // Not a terminal: createProgress prints a progress line every few seconds instead of a bar.
      const b = await waitForEnd(rt, plan.batchId, flags.json === true);
      // Refused at validation: no line ran, so no output file at all.
      const refused = b.status === "failed" && Number(b.total) === 0;
      if (!refused) {
        const tmp = `${output}.tmp`;
        await writeFinishedFile(rt.ctx.store, plan.batchId, tmp);
        await rename(tmp, output);
      }
      const failed = Number(b.failed);
      if (flags.json)
        process.stdout.write(
          `${JSON.stringify({ id: b.id, status: b.status, total: Number(b.total), completed: Number(b.completed), failed })}\n`,
        );
      else if (refused) process.stderr.write(`failed: ${input} was refused at validation; no output written\n`);
      else
        process.stderr.write(
          `${b.status}: ${Number(b.completed)} succeeded, ${failed} failed of ${Number(b.total)} → ${output}\n`,
        );
      if (b.status === "failed") {
        const errors = JSON.parse(b.errors ?? "{}") as {
          data?: { line: number | null; code: string; message: string }[];
          total_count?: number;
        };
        for (const e of errors.data ?? [])
          process.stderr.write(`  ${e.line !== null ? `line ${e.line}: ` : ""}${e.code}: ${e.message}\n`);
        process.exitCode = 2;
      } else if (failed > 0 || b.status !== "completed") process.exitCode = 1;
      // Nothing worth keeping: every line succeeded, or a first run's file was refused.
      const nothingKept = refused ? !(await restorePrevious(rt, workDir, plan)) : (process.exitCode ?? 0) === 0;
      removeFolder = nothingKept && flags.keepWorkDir !== true;
    } finally {
      await rt.close();
    }
    if (removeFolder) {
      lock.release();
      await removeWorkFolder(folder);
      process.stderr.write(`Work folder ${workDir} removed (--keep-work-dir keeps it)\n`);
    } else if (process.exitCode === 1) {
      process.stderr.write(
        `State kept in ${workDir} (${formatBytes(await folderBytes(workDir))}): rerun the same command to retry the lines that did not succeed, or add --fresh to start over.\n`,
      );
    }
  });
}
