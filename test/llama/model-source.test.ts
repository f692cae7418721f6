import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cachedModelPath, type DownloadRequest, resolveModelPath } from "../../src/backends/llama-cpp/model-source.js";
import {
  defaultModelCacheDir,
  downloadUri,
  parseModelSpec,
  remoteCacheDir,
} from "../../src/backends/llama-cpp/model-spec.js";
import { DEMO_MODEL_FILE } from "../../src/demo-model/demo-model.js";
import { SluiceError } from "../../src/errors.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-models-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const noNetwork = async (): Promise<string> => {
  throw new Error("network must not be used");
};

describe("parseModelSpec", () => {
  it("parses local paths, demo, hf: URIs and URLs", () => {
    expect(parseModelSpec("demo")).toEqual({ kind: "demo" });
    expect(parseModelSpec("./m.gguf", "/work")).toEqual({ kind: "path", path: "/work/m.gguf" });
    expect(parseModelSpec("/abs/m.gguf")).toEqual({ kind: "path", path: "/abs/m.gguf" });
    expect(parseModelSpec("~/m.gguf")).toEqual({ kind: "path", path: join(homedir(), "m.gguf") });
    expect(parseModelSpec("file:///x/m.gguf")).toEqual({ kind: "path", path: "/x/m.gguf" });
    expect(parseModelSpec("hf:bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M")).toEqual({
      kind: "hf",
      user: "bartowski",
      repo: "Llama-3.2-1B-Instruct-GGUF",
      quant: "Q4_K_M",
      file: null,
      branch: null,
    });
    expect(parseModelSpec("hf:user/repo")).toMatchObject({ kind: "hf", quant: null, file: null });
    expect(parseModelSpec("hf:user/repo/sub/model.Q8_0.gguf#dev")).toEqual({
      kind: "hf",
      user: "user",
      repo: "repo",
      quant: null,
      file: "sub/model.Q8_0.gguf",
      branch: "dev",
    });
    expect(parseModelSpec("https://example.com/a/model.gguf?x=1")).toEqual({
      kind: "url",
      url: "https://example.com/a/model.gguf?x=1",
    });
  });

  it("rejects malformed specs with a typed error", () => {
    for (const bad of [
      "",
      "hf:",
      "hf:user",
      "hf:user/repo/../x.gguf",
      "hf:user/repo/readme.md",
      "ftp://x/m.gguf",
      "hf:u/r#b",
    ]) {
      let err: unknown;
      try {
        parseModelSpec(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(SluiceError);
      expect((err as SluiceError).code).toBe("invalid_model_spec");
      expect((err as SluiceError).status).toBe(400);
    }
  });

  it("builds the downloader URI back from the parsed spec", () => {
    const uri = (s: string) => {
      const spec = parseModelSpec(s);
      if (spec.kind !== "hf" && spec.kind !== "url") throw new Error("remote expected");
      return downloadUri(spec);
    };
    expect(uri("hf:u/r:Q4_K_M")).toBe("hf:u/r:Q4_K_M");
    expect(uri("hf:u/r")).toBe("hf:u/r");
    expect(uri("hf:u/r/a/b.gguf#dev")).toBe("hf:u/r/a/b.gguf#dev");
    expect(uri("https://h.example/m.gguf")).toBe("https://h.example/m.gguf");
  });
});

describe("cache paths", () => {
  it("defaults to ~/.cache/sluice/models, honouring XDG_CACHE_HOME", () => {
    expect(defaultModelCacheDir({})).toBe(join(homedir(), ".cache", "sluice", "models"));
    expect(defaultModelCacheDir({ XDG_CACHE_HOME: "/xdg" })).toBe("/xdg/sluice/models");
  });

  it("gives each remote spec its own readable folder", () => {
    const hf = parseModelSpec("hf:user/repo:Q4_K_M");
    const hf2 = parseModelSpec("hf:user/repo:Q8_0");
    const url = parseModelSpec("https://cdn.example.com/models/tiny.gguf");
    if (hf.kind !== "hf" || hf2.kind !== "hf" || url.kind !== "url") throw new Error("unexpected kinds");
    expect(remoteCacheDir("/c", hf)).toMatch(/^\/c\/hf\/user\/repo\/Q4_K_M-[0-9a-f]{10}$/);
    expect(remoteCacheDir("/c", hf2)).not.toBe(remoteCacheDir("/c", hf));
    expect(remoteCacheDir("/c", url)).toMatch(/^\/c\/url\/cdn\.example\.com\/tiny\.gguf-[0-9a-f]{10}$/);
  });
});

describe("resolveModelPath", () => {
  it("returns an existing local file and names a missing one", async () => {
    const file = join(dir, "local.gguf");
    await writeFile(file, "GGUF");
    expect(await resolveModelPath(file, { cacheDir: dir, download: noNetwork })).toBe(file);

    const missing = join(dir, "nope", "missing.gguf");
    const err = await resolveModelPath(missing, { cacheDir: dir, download: noNetwork }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SluiceError);
    expect((err as SluiceError).code).toBe("model_not_found");
    expect((err as SluiceError).message).toContain(missing);

    const dirErr = await resolveModelPath(dir, { cacheDir: dir, download: noNetwork }).catch((e: unknown) => e);
    expect((dirErr as SluiceError).code).toBe("model_not_found");
  });

  it("resolves demo to the generated model in the cache folder", async () => {
    const cache = join(dir, "demo-cache");
    expect(await resolveModelPath("demo", { cacheDir: cache, download: noNetwork })).toBe(join(cache, DEMO_MODEL_FILE));
  });

  it("downloads a remote spec once, then uses the cached file without the network", async () => {
    const cache = join(dir, "remote-cache");
    const requests: DownloadRequest[] = [];
    const fakeDownload = async (request: DownloadRequest) => {
      requests.push(request);
      await mkdir(request.dir, { recursive: true });
      await writeFile(join(request.dir, "model.Q4_K_M.gguf"), "GGUF");
      return "model.Q4_K_M.gguf";
    };
    const spec = "hf:someone/tiny-GGUF:Q4_K_M";
    expect(await cachedModelPath(parseModelSpec(spec), cache)).toBeNull();
    const first = await resolveModelPath(spec, { cacheDir: cache, download: fakeDownload });
    expect(requests.map((r) => r.uri)).toEqual(["hf:someone/tiny-GGUF:Q4_K_M"]);
    expect(first.startsWith(join(cache, "hf", "someone", "tiny-GGUF"))).toBe(true);

    expect(await resolveModelPath(spec, { cacheDir: cache, download: noNetwork })).toBe(first);
    expect(await cachedModelPath(parseModelSpec(spec), cache)).toBe(first);
  });

  it("reports a failed download with a typed error and caches nothing", async () => {
    const cache = join(dir, "failing-cache");
    const spec = "https://models.example.com/x.gguf";
    const err = await resolveModelPath(spec, { cacheDir: cache, download: noNetwork }).catch((e: unknown) => e);
    expect((err as SluiceError).code).toBe("model_download_failed");
    expect((err as SluiceError).message).toContain(spec);
    expect(await cachedModelPath(parseModelSpec(spec), cache)).toBeNull();
  });
});
