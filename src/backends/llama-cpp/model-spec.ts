/**
 * Model specs: what a user may write to name a model for the embedded engine, parsed without I/O.
 *   ./model.gguf, /abs/model.gguf, ~/m.gguf, file:///m.gguf   a local file
 *   demo                                                       the generated demo model
 *   hf:<user>/<repo>[:<quant>]                                 a Hugging Face repo, one quantization
 *   hf:<user>/<repo>/<path/to/file.gguf>[#<branch>]            a file in a Hugging Face repo
 *   https://host/path/model.gguf                               any URL
 */
import { createHash } from "node:crypto";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SluiceError } from "../../errors.js";

export type ModelSpec =
  | { kind: "path"; path: string }
  | { kind: "demo" }
  | { kind: "hf"; user: string; repo: string; quant: string | null; file: string | null; branch: string | null }
  | { kind: "url"; url: string };

export const invalidModelSpec = (spec: string, why: string) =>
  new SluiceError("invalid_model_spec", `Invalid model '${spec}': ${why}`, {
    status: 400,
    type: "invalid_request_error",
    param: "model",
  });

const HF_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function parseHf(spec: string): ModelSpec {
  let rest = spec.replace(/^hf:(\/\/)?/, "");
  let branch: string | null = null;
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    branch = rest.slice(hash + 1) || null;
    rest = rest.slice(0, hash);
  }
  const [user = "", repoAndQuant = "", ...fileParts] = rest.split("/");
  const file = fileParts.length > 0 ? fileParts.join("/") : null;
  let repo = repoAndQuant;
  let quant: string | null = null;
  if (file === null && repoAndQuant.includes(":")) {
    [repo = "", quant = null] = repoAndQuant.split(":", 2);
    if (quant === "") quant = null;
  }
  if (!HF_NAME.test(user) || !HF_NAME.test(repo)) {
    throw invalidModelSpec(spec, "expected hf:<user>/<repo>[:<quant>] or hf:<user>/<repo>/<file.gguf>[#<branch>]");
  }
  if (file !== null && (file.split("/").some((p) => p === "" || p === "." || p === "..") || !file.endsWith(".gguf"))) {
    throw invalidModelSpec(spec, `'${file}' is not a .gguf file path inside the repository`);
  }
  if (branch !== null && file === null) throw invalidModelSpec(spec, "a #branch needs a file path");
  return { kind: "hf", user, repo, quant, file, branch };
}

/** Parses a model spec (no I/O). Relative paths resolve against `cwd`. */
export function parseModelSpec(spec: string, cwd: string = process.cwd()): ModelSpec {
  const s = spec.trim();
  if (s === "") throw invalidModelSpec(spec, "empty");
  if (s === "demo") return { kind: "demo" };
  if (/^hf:/i.test(s)) return parseHf(s);
  if (/^https?:\/\//i.test(s)) {
    try {
      return { kind: "url", url: new URL(s).href };
    } catch {
      throw invalidModelSpec(spec, "not a valid URL");
    }
  }
  if (s.startsWith("file://")) return { kind: "path", path: fileURLToPath(s) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s))
    throw invalidModelSpec(spec, "only https://, hf: and local paths are supported");
  const expanded = s === "~" || s.startsWith("~/") ? join(homedir(), s.slice(1)) : s;
  return { kind: "path", path: resolve(cwd, expanded) };
}

/** The URI node-llama-cpp's downloader understands, for remote specs. */
export function downloadUri(spec: Extract<ModelSpec, { kind: "hf" | "url" }>): string {
  if (spec.kind === "url") return spec.url;
  const base = `hf:${spec.user}/${spec.repo}`;
  if (spec.file === null) return spec.quant === null ? base : `${base}:${spec.quant}`;
  return `${base}/${spec.file}${spec.branch === null ? "" : `#${spec.branch}`}`;
}

const slug = (s: string) =>
  s
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^[._]+/, "")
    .slice(0, 80);

/**
 * The cache folder a remote spec downloads into: readable, plus a short hash of the exact URI so
 * two specs never share a folder (`<cache>/hf/<user>/<repo>/<quant-or-file>-<hash>`).
 */
export function remoteCacheDir(cacheDir: string, spec: Extract<ModelSpec, { kind: "hf" | "url" }>): string {
  const uri = downloadUri(spec);
  const hash = createHash("sha256").update(uri).digest("hex").slice(0, 10);
  if (spec.kind === "hf") {
    const leaf = spec.file ?? spec.quant ?? "default";
    return join(cacheDir, "hf", slug(spec.user), slug(spec.repo), `${slug(leaf)}-${hash}`);
  }
  const url = new URL(spec.url);
  const file = url.pathname.split("/").filter(Boolean).at(-1) ?? "model";
  return join(cacheDir, "url", slug(url.host), `${slug(file)}-${hash}`);
}

/** `~/.cache/sluice/models`, or `$XDG_CACHE_HOME/sluice/models` when set. */
export function defaultModelCacheDir(env: Readonly<Record<string, string | undefined>>): string {
  const base =
    env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== "" ? env.XDG_CACHE_HOME : join(homedir(), ".cache");
  return join(base, "sluice", "models");
}
