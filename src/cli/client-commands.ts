/** Client commands against a running server: submit, status, results, cancel, retry, list. */
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { isTerminal } from "../batch/lifecycle.js";
import type { ClientFlags, ClientOptions } from "../config/server.js";
import { fromFlag, integer } from "../config/setting.js";
import { resolveClient } from "../config.js";
import { api, download, uploadFile } from "./http-client.js";
import { createProgress, shownStatus } from "./progress.js";

interface BatchView {
  id: string;
  status: string;
  endpoint: string;
  created_at: number;
  output_file_id: string | null;
  error_file_id: string | null;
  request_counts: { total: number; completed: number; failed: number };
  errors: { data: { code: string; message: string; line: number | null }[] } | null;
  /** Extension: set while no engine for the batch's model answers. */
  waiting_for_backend?: { since: number; message: string } | null;
  /** Extensions (README "Never pay twice"): lines answered without a call of their own. */
  reuse?: { mode: string; reused: number };
  dedup?: { mode: string; merged: number };
}

function printBatch(b: BatchView, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(b)}\n`);
    return;
  }
  const c = b.request_counts;
  process.stdout.write(
    `${b.id}  ${shownStatus(b.status, b.waiting_for_backend?.since)}  ${c.completed}/${c.total} done, ${c.failed} failed\n`,
  );
  const reused = b.reuse?.reused ?? 0;
  const merged = b.dedup?.merged ?? 0;
  if (reused + merged > 0) {
    process.stdout.write(
      `  without a call: ${reused} reused from earlier batches, ${merged} merged with identical lines\n`,
    );
  }
  if (b.waiting_for_backend)
    process.stdout.write(
      `  waiting since ${new Date(b.waiting_for_backend.since * 1000).toISOString()}: ${b.waiting_for_backend.message}\n`,
    );
  if (b.output_file_id) process.stdout.write(`  output: ${b.output_file_id}\n`);
  if (b.error_file_id) process.stdout.write(`  errors: ${b.error_file_id}\n`);
  for (const e of b.errors?.data.slice(0, 20) ?? []) {
    process.stdout.write(`  ${e.line !== null ? `line ${e.line}: ` : ""}${e.code}: ${e.message}\n`);
  }
}

async function waitFor(c: ClientOptions, id: string, json: boolean): Promise<BatchView> {
  const bar = json ? undefined : createProgress();
  try {
    for (;;) {
      const b = await api<BatchView>(c, "GET", `/batches/${id}`);
      const n = b.request_counts;
      bar?.update(n.completed + n.failed, n.failed, n.total, shownStatus(b.status, b.waiting_for_backend?.since));
      if (isTerminal(b.status)) return b;
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    bar?.stop();
  }
}

export function registerClientCommands(program: Command): void {
  program
    .command("submit <file>")
    .description("Upload a batch input file and create a batch on the server at SLUICE_BASE_URL")
    .option("--base-url <url>", "the server (default SLUICE_BASE_URL, else http://127.0.0.1:8080/v1)")
    .option("--api-key <key>", "API key (default SLUICE_API_KEY)")
    .option("--endpoint <url>", "batch endpoint", "/v1/chat/completions")
    .option("--window <duration>", "completion window: 24h, 1h, 7d…", "24h")
    .option("--wait", "show a progress bar until the batch ends")
    .option("--json", "machine-readable output")
    .action(
      async (
        file: string,
        flags: ClientFlags & { endpoint: string; window: string; wait?: boolean; json?: boolean },
      ) => {
        const c = resolveClient(flags);
        const uploaded = await uploadFile(c, file);
        let batch = await api<BatchView>(c, "POST", "/batches", {
          input_file_id: uploaded.id,
          endpoint: flags.endpoint,
          completion_window: flags.window,
        });
        if (flags.wait) batch = await waitFor(c, batch.id, flags.json === true);
        printBatch(batch, flags.json === true);
        if (flags.wait && (batch.status !== "completed" || batch.request_counts.failed > 0)) process.exitCode = 1;
      },
    );

  program
    .command("status <id>")
    .description("Show a batch")
    .option("--base-url <url>", "the server (default SLUICE_BASE_URL, else http://127.0.0.1:8080/v1)")
    .option("--api-key <key>", "API key (default SLUICE_API_KEY)")
    .option("--json", "machine-readable output")
    .option("--wait", "show a progress bar until the batch ends")
    .action(async (id: string, flags: ClientFlags & { json?: boolean; wait?: boolean }) => {
      const b = flags.wait
        ? await waitFor(resolveClient(flags), id, flags.json === true)
        : await api<BatchView>(resolveClient(flags), "GET", `/batches/${id}`);
      printBatch(b, flags.json === true);
    });

  program
    .command("results <id>")
    .description("Download a batch's results (finished so far, if it is still running)")
    .option("--base-url <url>", "the server (default SLUICE_BASE_URL, else http://127.0.0.1:8080/v1)")
    .option("--api-key <key>", "API key (default SLUICE_API_KEY)")
    .option("-o, --output <file>", "write to a file instead of stdout")
    .option("--errors", "the error lines instead of the successful ones")
    .action(async (id: string, flags: ClientFlags & { output?: string; errors?: boolean }) => {
      const c = resolveClient(flags);
      const b = await api<BatchView>(c, "GET", `/batches/${id}`);
      const fileId = flags.errors ? b.error_file_id : b.output_file_id;
      const path = isTerminal(b.status)
        ? fileId === null
          ? undefined
          : `/files/${fileId}/content`
        : `/batches/${id}/output?type=${flags.errors ? "error" : "output"}`;
      if (path === undefined) return;
      const body = await download(c, path);
      await pipeline(body, flags.output ? createWriteStream(flags.output) : process.stdout);
    });

  program
    .command("cancel <id>")
    .description("Cancel a batch (finished results are still delivered)")
    .option("--base-url <url>", "the server (default SLUICE_BASE_URL, else http://127.0.0.1:8080/v1)")
    .option("--api-key <key>", "API key (default SLUICE_API_KEY)")
    .option("--json", "machine-readable output")
    .action(async (id: string, flags: ClientFlags & { json?: boolean }) => {
      printBatch(await api<BatchView>(resolveClient(flags), "POST", `/batches/${id}/cancel`), flags.json === true);
    });

  program
    .command("retry <id>")
    .description(
      "Run an ended batch's failed, expired and cancelled lines again, in a new batch (its successes are reused)",
    )
    .option("--base-url <url>", "the server (default SLUICE_BASE_URL, else http://127.0.0.1:8080/v1)")
    .option("--api-key <key>", "API key (default SLUICE_API_KEY)")
    .option("--wait", "show a progress bar until the new batch ends")
    .option("--json", "machine-readable output")
    .action(async (id: string, flags: ClientFlags & { wait?: boolean; json?: boolean }) => {
      const c = resolveClient(flags);
      let batch = await api<BatchView>(c, "POST", `/batches/${id}/retry`);
      if (flags.wait) batch = await waitFor(c, batch.id, flags.json === true);
      printBatch(batch, flags.json === true);
      if (flags.wait && (batch.status !== "completed" || batch.request_counts.failed > 0)) process.exitCode = 1;
    });

  program
    .command("list")
    .description("List recent batches")
    .option("--base-url <url>", "the server (default SLUICE_BASE_URL, else http://127.0.0.1:8080/v1)")
    .option("--api-key <key>", "API key (default SLUICE_API_KEY)")
    .option("--limit <n>", "how many", "20")
    .option("--json", "machine-readable output")
    .action(async (flags: ClientFlags & { limit: string; json?: boolean }) => {
      const limit = fromFlag("--limit", flags.limit, integer(1, 100)) ?? 20;
      const page = await api<{ data: BatchView[] }>(resolveClient(flags), "GET", `/batches?limit=${limit}`);
      if (flags.json) process.stdout.write(`${JSON.stringify(page.data)}\n`);
      else for (const b of page.data) printBatch(b, false);
    });
}
