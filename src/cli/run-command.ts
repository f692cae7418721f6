/**
 * `sluice run INPUT -o OUTPUT`: the one-shot replacement for `vllm run-batch`. The same engine runs
 * on an embedded store in a work folder (default `.sluice-run/<hash of input+output paths>`), so
 * rerunning the same command after an interruption resumes the same batch where it stopped.
 * OUTPUT gets every line (successes and errors) in input order; exit code 1 when any line failed.
 */

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { createBatch } from "../batch/batch-service.js";
import { isTerminal } from "../batch/lifecycle.js";
import { importLocalFile } from "../batch/local-file.js";
import { writeFinishedFile } from "../batch/result-stream.js";
import { resolveRunConfig } from "../config.js";
import { SluiceError } from "../errors.js";
import { createLogger } from "../logger.js";
import { openRuntime, type Runtime, resolveRoutes } from "../runtime.js";
import { type BatchRow, getBatch } from "../store/batches.js";
import { lockDataFolder } from "../store/folder-lock.js";
import { DEFAULT_TENANT } from "../store/tenants.js";
import { checkModelsRouted } from "./model-check.js";
import { addExecutionOptions, type ExecutionCliFlags } from "./options.js";
import { createProgress } from "./progress.js";
import { onShutdownSignal } from "./serve-command.js";

interface RunFlags extends ExecutionCliFlags {
  output: string;
  workDir?: string;
  endpoint?: string;
  window?: string;
  json?: boolean;
  logLevel?: string;
}

interface RunState {
  batchId: string;
  input: { path: string; size: number; mtimeMs: number };
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

async function startOrResume(
  rt: Runtime,
  workDir: string,
  input: string,
  flags: RunFlags & { window: string },
): Promise<string> {
  const statePath = join(workDir, "run.json");
  const info = await stat(input).catch(() => {
    throw new SluiceError("input_not_found", `Input file not found: ${input}`);
  });
  const fingerprint = { path: input, size: info.size, mtimeMs: Math.floor(info.mtimeMs) };
  const previous = await readFile(statePath, "utf8").then(
    (t) => JSON.parse(t) as RunState,
    () => undefined,
  );
  if (previous !== undefined) {
    if (previous.input.size !== fingerprint.size || previous.input.mtimeMs !== fingerprint.mtimeMs) {
      throw new SluiceError(
        "input_changed",
        `The input changed since the interrupted run in ${workDir}; delete that folder or pass another --work-dir.`,
      );
    }
    if ((await getBatch(rt.ctx.store, DEFAULT_TENANT, previous.batchId)) !== undefined) {
      process.stderr.write(`Resuming batch ${previous.batchId} from ${workDir}\n`);
      return previous.batchId;
    }
  }
  const fileId = await importLocalFile(rt.ctx, DEFAULT_TENANT, input);
  const batch = await createBatch(rt.ctx, {
    tenantId: DEFAULT_TENANT,
    inputFileId: fileId,
    endpoint: flags.endpoint ?? (await detectEndpoint(input)),
    completionWindow: flags.window,
  });
  const state: RunState = { batchId: batch.id, input: fingerprint };
  await writeFile(`${statePath}.tmp`, JSON.stringify(state));
  await rename(`${statePath}.tmp`, statePath);
  return batch.id;
}

async function waitForEnd(rt: Runtime, batchId: string, quiet: boolean): Promise<BatchRow> {
  const bar = quiet ? undefined : createProgress();
  try {
    for (;;) {
      const b = await getBatch(rt.ctx.store, DEFAULT_TENANT, batchId);
      if (b === undefined) throw new SluiceError("batch_missing", `Batch ${batchId} disappeared from the work folder.`);
      const done = Number(b.completed) + Number(b.failed);
      bar?.update(done, Number(b.failed), Number(b.total), b.status);
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
    .description("Run a batch file locally and write the results (resumable: rerun the same command)")
    .requiredOption("-o, --output <file>", "where to write result lines (input order)")
    .option("--work-dir <dir>", "work folder holding the resumable state")
    .option("--endpoint <url>", "batch endpoint (default: the first line's url)")
    .option("--window <duration>", "completion window (default 30d)")
    .option("--json", "print the final Batch object as JSON")
    .option("--log-level <level>", "debug | info | warn | error | silent (env SLUICE_LOG_LEVEL, default warn)");
  addExecutionOptions(cmd).action(async (inputArg: string, flags: RunFlags) => {
    // Every setting is checked before anything is created.
    const { execution, window, ...settings } = resolveRunConfig(flags);
    const input = resolve(inputArg);
    const output = resolve(flags.output);
    const hash = createHash("sha256").update(`${input}\0${output}`).digest("hex").slice(0, 16);
    const workDir = resolve(flags.workDir ?? join(".sluice-run", hash));
    // Every model of the file has an engine, or nothing is created (no work folder, no output).
    await checkModelsRouted(input, (await resolveRoutes(execution)).routes);
    await mkdir(workDir, { recursive: true });
    lockDataFolder(workDir); // two runs of the same command must not both run the batch
    const rt = await openRuntime(
      { dataDir: workDir, store: { kind: "sqlite", path: join(workDir, "sluice.db") }, ...settings },
      // The `-o` file is written from the store below: the batch needs no output files of its own.
      { execution, logger: createLogger(settings.logLevel), worker: { outputFiles: false } },
    );
    onShutdownSignal(async () => {
      await rt.close();
      process.stderr.write(`Interrupted. Rerun the same command to continue (state in ${workDir}).\n`);
      process.exit(130);
    });
    try {
      const batchId = await startOrResume(rt, workDir, input, { ...flags, window });
      rt.worker?.start();
      // Not a terminal: createProgress prints a progress line every few seconds instead of a bar.
      const b = await waitForEnd(rt, batchId, flags.json === true);
      const tmp = `${output}.tmp`;
      await writeFinishedFile(rt.ctx.store, batchId, tmp);
      await rename(tmp, output);
      const failed = Number(b.failed);
      if (flags.json)
        process.stdout.write(
          `${JSON.stringify({ id: b.id, status: b.status, total: Number(b.total), completed: Number(b.completed), failed })}\n`,
        );
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
    } finally {
      await rt.close();
    }
  });
}
