/**
 * Generates batch-input JSONL (chat requests) for benchmarks, streamed to a file. Request j uses
 * shared system prompt floor(j · systemPrompts / count) and its own user message; `shuffle` only
 * permutes the ORDER of the same requests, so sorted and shuffled files carry identical work and
 * differ only in how well an engine's prefix cache can serve them.
 */
import { once } from "node:events";
import { createWriteStream } from "node:fs";

export interface GenInputOptions {
  path: string;
  count: number;
  /** Distinct shared system prompts (0 = none). */
  systemPrompts?: number;
  /** Length of each system prompt in characters (≈ 4 per simulator token). */
  systemPromptChars?: number;
  userChars?: number;
  shuffle?: boolean;
  /** Sets max_tokens on every request; absent lets the engine pick the length. */
  maxTokens?: number;
  model?: string;
  seed?: number;
}

export interface GenInputResult {
  path: string;
  requests: number;
  bytes: number;
}

const WORDS = "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega river stone cloud ember field"
  .split(" ")
  .concat("quartz maple orbit pixel vector signal harbor lantern meadow copper falcon willow".split(" "));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function text(chars: number, rand: () => number): string {
  let s = "";
  while (s.length < chars) s += `${WORDS[Math.floor(rand() * WORDS.length)]} `;
  return s.slice(0, chars);
}

export async function generateInput(o: GenInputOptions): Promise<GenInputResult> {
  const seed = o.seed ?? 1;
  const prompts = o.systemPrompts ?? 0;
  const systemTexts = Array.from({ length: prompts }, (_, k) =>
    text(o.systemPromptChars ?? 2000, rng(seed * 7919 + k)),
  );
  const order = new Uint32Array(o.count);
  for (let i = 0; i < o.count; i++) order[i] = i;
  if (o.shuffle === true) {
    const rand = rng(seed ^ 0x9e3779b9);
    for (let i = o.count - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      const t = order[i] as number;
      order[i] = order[j] as number;
      order[j] = t;
    }
  }
  const out = createWriteStream(o.path);
  let bytes = 0;
  for (const j of order) {
    const messages: { role: string; content: string }[] = [];
    const system = systemTexts[Math.floor((j * prompts) / o.count)];
    if (system !== undefined) messages.push({ role: "system", content: system });
    messages.push({ role: "user", content: `Request ${j}: ${text(o.userChars ?? 200, rng(seed * 104729 + j))}` });
    const body: Record<string, unknown> = { model: o.model ?? "sluice-sim", messages };
    if (o.maxTokens !== undefined) body["max_tokens"] = o.maxTokens;
    const line = `${JSON.stringify({ custom_id: `req-${j}`, method: "POST", url: "/v1/chat/completions", body })}\n`;
    bytes += Buffer.byteLength(line);
    if (!out.write(line)) await once(out, "drain");
  }
  out.end();
  await once(out, "close");
  return { path: o.path, requests: o.count, bytes };
}
