/**
 * The simulator's tokenizer: one token per 4 UTF-8 bytes (rounded up, at least 1). Crude but
 * deterministic, cheap, and close to the ~4 characters per token of English BPE vocabularies.
 * Token i of a prompt is bytes [4i, 4i+4), so prompt blocks are fixed byte ranges too.
 */
import { RunningHash, seededRandom } from "./hash.js";

export const BYTES_PER_TOKEN = 4;

export function countTokens(byteLength: number): number {
  return Math.max(1, Math.ceil(byteLength / BYTES_PER_TOKEN));
}

/**
 * Hash-chain keys of the prompt blocks that may be served from the prefix cache. As on vLLM, only
 * full blocks are cacheable and the last prompt token is always computed, so a prompt of p tokens
 * has floor((p - 1) / blockSize) cacheable blocks. Key k hashes every byte of blocks 0..k.
 */
export function prefixBlockKeys(prompt: Uint8Array, blockSize: number): number[] {
  const tokens = countTokens(prompt.length);
  const cacheable = Math.floor((tokens - 1) / blockSize);
  const blockBytes = blockSize * BYTES_PER_TOKEN;
  const hash = new RunningHash(blockSize);
  const keys = new Array<number>(cacheable);
  for (let k = 0; k < cacheable; k++) {
    hash.updateBytes(prompt, k * blockBytes, (k + 1) * blockBytes);
    keys[k] = hash.snapshot();
  }
  return keys;
}

// 64 three-letter words: each generated token is one word plus a space, exactly 4 bytes.
const WORDS = (
  "the and for are but not you all any can had her was one our out day get has him his how man new now old " +
  "see two way who boy did its let put say she too use act add age ago aid aim air arm art ask bad bag bed"
).split(" ");

/** Deterministic text whose length under this tokenizer is exactly `tokens`. */
export function renderCompletionText(tokens: number, key: number): string {
  const rand = seededRandom(key);
  const words = new Array<string>(tokens);
  for (let i = 0; i < tokens; i++) words[i] = WORDS[Math.floor(rand() * WORDS.length)] as string;
  return words.join(" ");
}
