/**
 * The network half of model resolution: node-llama-cpp's downloader (parallel connections, split
 * GGUF parts, Hugging Face quant lookup, resumable temp files) with a cli-progress bar on stderr.
 * Not exercised by the test suite (no network there); everything before it is.
 */
import cliProgress from "cli-progress";
import { createModelDownloader } from "node-llama-cpp";
import type { Logger } from "../../logger.js";
import type { DownloadRequest } from "./model-source.js";

const MB = 1024 * 1024;
/** Without a terminal, log progress every this many bytes instead of drawing a bar. */
const LOG_EVERY_BYTES = 256 * MB;

function progressReporter(uri: string, logger: Logger | undefined) {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: "model [{bar}] {percentage}% | {done}/{size} MB | {speed} MB/s | ETA {eta_formatted}",
        stream: process.stderr,
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(done: number, total: number, bytesPerSecond: number) {
        const payload = {
          done: (done / MB).toFixed(0),
          size: (total / MB).toFixed(0),
          speed: (bytesPerSecond / MB).toFixed(1),
        };
        if (!started) {
          bar.start(total, done, payload);
          started = true;
        } else bar.update(done, payload);
      },
      stop: () => started && bar.stop(),
    };
  }
  let nextLogAt = 0;
  return {
    update(done: number, total: number) {
      if (done < nextLogAt) return;
      nextLogAt = done + LOG_EVERY_BYTES;
      logger?.info("downloading model", { model: uri, doneMB: Math.round(done / MB), totalMB: Math.round(total / MB) });
    },
    stop: () => undefined,
  };
}

/** Downloads a model URI into `request.dir`; returns the file name to load. */
export async function downloadModel(request: DownloadRequest, logger: Logger | undefined): Promise<string> {
  const hfToken = request.hfToken;
  const progress = progressReporter(request.uri, logger);
  const downloader = await createModelDownloader({
    modelUri: request.uri,
    dirPath: request.dir,
    showCliProgress: false,
    skipExisting: true,
    onProgress: ({ downloadedSize, totalSize, averageSpeed }) =>
      progress.update(downloadedSize, totalSize, averageSpeed),
    ...(hfToken !== undefined && hfToken !== "" ? { tokens: { huggingFace: hfToken } } : {}),
  });
  try {
    await downloader.download(request.signal ? { signal: request.signal } : {});
  } finally {
    progress.stop();
  }
  return downloader.entrypointFilename;
}
