/**
 * `sluice run`'s check before anything runs: every model the input file names must have a route.
 * Without it, a file written for `gpt-4o-mini` with no engine configured would fail every line
 * (or, before, run silently on the demo model); now it stops at once with one line saying how to
 * point Sluice at an engine. The file is streamed; only distinct model names are kept (bounded).
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { RouteSpec } from "../backends/route-config.js";
import { Router } from "../backends/router.js";
import { SluiceError } from "../errors.js";

const MAX_MODELS = 10_000;

export async function checkModelsRouted(input: string, routes: RouteSpec[], configFile?: string): Promise<void> {
  // Matching only: no backend is created for the check.
  const router = new Router(routes, () => Promise.reject(new Error("not for the check")));
  if (router.servesEveryModel) return;
  const seen = new Set<string>();
  const stream = createReadStream(input);
  await new Promise<void>((ok, fail) => {
    stream.once("open", () => ok());
    stream.once("error", (err: NodeJS.ErrnoException) =>
      fail(err.code === "ENOENT" ? new SluiceError("file_not_found", `input file not found: ${input}`) : err),
    );
  });
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of lines) {
    n++;
    let model: unknown;
    try {
      model = (JSON.parse(line) as { body?: { model?: unknown } }).body?.model;
    } catch {
      continue; // validation reports it, with every other bad line
    }
    if (typeof model !== "string" || seen.has(model)) continue;
    if (seen.size < MAX_MODELS) seen.add(model);
    if (!router.routes(model)) {
      lines.close();
      const name = model.length > 64 ? `${model.slice(0, 64)}…` : model;
      if (configFile !== undefined)
        throw new SluiceError(
          "no_route",
          `no route of ${configFile} matches model '${name}' (line ${n}): add a route whose match covers it (an exact name or a glob such as '${name.split(/[-:/]/)[0]}*'), or pass --backend URL as the fallback for every model`,
        );
      throw new SluiceError(
        "no_route",
        `no engine is configured for model '${name}' (line ${n}): pass --backend http://HOST:PORT/v1 for an OpenAI-compatible server (vLLM, SGLang, llama.cpp, TGI, Ollama), --config FILE for a routing file, or --model PATH|hf:…|demo to run a GGUF model in-process`,
      );
    }
  }
}
