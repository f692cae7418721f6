/**
 * Turns a model spec into a local GGUF path: local files are checked, `demo` is generated, remote
 * specs are downloaded once into the cache. A finished download leaves a manifest naming the file
 * to load; a cached model is used straight from the manifest, without touching the network.
 */
import { existsSync, statSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ensureDemoModel } from "../../demo-model/demo-model.js";
import { SluiceError } from "../../errors.js";
import type { Logger } from "../../logger.js";
import { downloadUri, type ModelSpec, parseModelSpec, remoteCacheDir } from "./model-spec.js";

const MANIFEST = "sluice-model.json";

interface Manifest {
  uri: string;
  /** File to load, relative to the manifest's folder (the first part of a split model). */
  entrypoint: string;
}

export interface DownloadRequest {
  uri: string;
  /** Hugging Face token, for gated or private repos. */
  hfToken?: string;
  /** Folder to download into (created by the downloader). */
  dir: string;
  signal?: AbortSignal;
}

/** Downloads `uri` into `dir` and returns the entrypoint file's name inside it. */
export type ModelDownloadFn = (request: DownloadRequest) => Promise<string>;

export interface ResolveModelOptions {
  cacheDir: string;
  hfToken?: string;
  /** Performs the download; defaults to node-llama-cpp's downloader with a progress bar. */
  download?: ModelDownloadFn;
  logger?: Logger;
  signal?: AbortSignal;
  cwd?: string;
}

export const modelNotFound = (path: string, spec: string) =>
  new SluiceError(
    "model_not_found",
    `Model file not found: ${path}${spec === path ? "" : ` (from model '${spec}')`}. ` +
      "Pass a path to a .gguf file, 'demo', an hf:<user>/<repo>[:<quant>] URI or an https:// URL.",
    { status: 400, type: "invalid_request_error", param: "model" },
  );

export const modelDownloadFailed = (uri: string, cause: unknown) =>
  new SluiceError(
    "model_download_failed",
    `Could not download model '${uri}': ${cause instanceof Error ? cause.message : String(cause)}`,
    { status: 502, type: "server_error", cause },
  );

async function readManifest(dir: string): Promise<string | null> {
  try {
    const manifest = JSON.parse(await readFile(join(dir, MANIFEST), "utf8")) as Partial<Manifest>;
    if (typeof manifest.entrypoint !== "string") return null;
    const path = join(dir, manifest.entrypoint);
    return existsSync(path) ? path : null;
  } catch {
    return null;
  }
}

/** The local file of an already-downloaded remote spec, or null (no network). */
export async function cachedModelPath(spec: ModelSpec, cacheDir: string): Promise<string | null> {
  if (spec.kind !== "hf" && spec.kind !== "url") return null;
  return readManifest(remoteCacheDir(cacheDir, spec));
}

async function defaultDownload(request: DownloadRequest, logger: Logger | undefined): Promise<string> {
  // Loaded lazily: the downloader pulls in network and terminal code a local model never needs.
  const { downloadModel } = await import("./model-download.js");
  return downloadModel(request, logger);
}

/** Resolves a model spec to a local GGUF file, downloading or generating it on first use. */
export async function resolveModelPath(specText: string, options: ResolveModelOptions): Promise<string> {
  const spec = parseModelSpec(specText, options.cwd);
  switch (spec.kind) {
    case "demo":
      return ensureDemoModel(options.cacheDir);
    case "path": {
      if (!existsSync(spec.path)) throw modelNotFound(spec.path, specText);
      if (!statSync(spec.path).isFile()) throw modelNotFound(spec.path, specText);
      return spec.path;
    }
    case "hf":
    case "url": {
      const dir = remoteCacheDir(options.cacheDir, spec);
      const cached = await readManifest(dir);
      if (cached !== null) return cached;
      const uri = downloadUri(spec);
      options.logger?.info("downloading model", { model: uri, dir });
      await mkdir(dir, { recursive: true });
      let entrypoint: string;
      try {
        const request: DownloadRequest = {
          uri,
          dir,
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.hfToken !== undefined ? { hfToken: options.hfToken } : {}),
        };
        entrypoint = await (options.download ?? ((r) => defaultDownload(r, options.logger)))(request);
      } catch (err) {
        throw modelDownloadFailed(uri, err);
      }
      const manifest: Manifest = { uri, entrypoint };
      await writeFile(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
      return join(dir, entrypoint);
    }
  }
}
