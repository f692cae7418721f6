/**
 * The generated demo model: a tiny llama-architecture GGUF with a byte-level vocabulary, a ChatML
 * template and random weights from a seed. It loads and runs in llama.cpp like any real model, so
 * the embedded engine can be tried and tested offline; its output is gibberish by construction.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { buildDemoVocab, vocabMetadata } from "./demo-vocab.js";
import { encodeGguf, type GgufTensor, type GgufValue, type TensorElementType } from "./gguf-writer.js";

export interface DemoModelOptions {
  /** Seed for the random weights; the same options always give the same file. Default 1. */
  seed?: number;
  /** Hidden size (n_embd). Default 128. */
  embeddingLength?: number;
  /** Transformer blocks. Default 2. */
  layers?: number;
  /** Attention heads; must divide embeddingLength. Default 4. */
  heads?: number;
  /** Feed-forward hidden size. Default 352. */
  feedForwardLength?: number;
  /** Trained context length announced in the metadata. Default 2048. */
  contextLength?: number;
  /** Storage type of the weight matrices. Default "f32". */
  tensorType?: TensorElementType;
}

/**
 * Bump when the generated file changes for the same options, so cached copies are not reused.
 * It is part of the cached file name.
 */
const GENERATOR_VERSION = 1;
export const DEMO_MODEL_FILE = `sluice-demo-v${GENERATOR_VERSION}.gguf`;

/** mulberry32: a small, fast, seedable PRNG; quality is irrelevant for random weights. */
function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function buildTensors(o: Required<DemoModelOptions>, vocabSize: number): GgufTensor[] {
  const random = createRandom(o.seed);
  // Uniform with standard deviation 0.02, the usual transformer initialisation scale.
  const spread = 0.02 * Math.sqrt(3);
  const matrix = (name: string, cols: number, rows: number): GgufTensor => {
    const data = new Float32Array(cols * rows);
    for (let i = 0; i < data.length; i++) data[i] = (random() * 2 - 1) * spread;
    return { name, dims: [cols, rows], type: o.tensorType, data };
  };
  // Norm weights stay f32 (llama.cpp expects 1-D tensors in f32) and start at 1.
  const norm = (name: string): GgufTensor => ({
    name,
    dims: [o.embeddingLength],
    type: "f32",
    data: new Float32Array(o.embeddingLength).fill(1),
  });
  const e = o.embeddingLength;
  const tensors = [matrix("token_embd.weight", e, vocabSize), norm("output_norm.weight")];
  tensors.push(matrix("output.weight", e, vocabSize));
  for (let i = 0; i < o.layers; i++) {
    const p = `blk.${i}`;
    tensors.push(
      norm(`${p}.attn_norm.weight`),
      matrix(`${p}.attn_q.weight`, e, e),
      matrix(`${p}.attn_k.weight`, e, e),
      matrix(`${p}.attn_v.weight`, e, e),
      matrix(`${p}.attn_output.weight`, e, e),
      norm(`${p}.ffn_norm.weight`),
      matrix(`${p}.ffn_gate.weight`, e, o.feedForwardLength),
      matrix(`${p}.ffn_up.weight`, e, o.feedForwardLength),
      matrix(`${p}.ffn_down.weight`, o.feedForwardLength, e),
    );
  }
  return tensors;
}

function resolveOptions(options: DemoModelOptions): Required<DemoModelOptions> {
  const o: Required<DemoModelOptions> = {
    seed: options.seed ?? 1,
    embeddingLength: options.embeddingLength ?? 128,
    layers: options.layers ?? 2,
    heads: options.heads ?? 4,
    feedForwardLength: options.feedForwardLength ?? 352,
    contextLength: options.contextLength ?? 2048,
    tensorType: options.tensorType ?? "f32",
  };
  if (o.embeddingLength % o.heads !== 0) {
    throw new Error(`embeddingLength (${o.embeddingLength}) must be a multiple of heads (${o.heads})`);
  }
  return o;
}

/** The GGUF file (as buffers) for the demo model with these options. */
export function encodeDemoModel(options: DemoModelOptions = {}): Buffer[] {
  const o = resolveOptions(options);
  const vocab = buildDemoVocab();
  const u32 = (value: number): GgufValue => ({ type: "u32", value });
  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: "sluice-demo (random weights)" }],
    ["general.file_type", u32(o.tensorType === "f32" ? 0 : 1)],
    ["llama.context_length", u32(o.contextLength)],
    ["llama.embedding_length", u32(o.embeddingLength)],
    ["llama.block_count", u32(o.layers)],
    ["llama.feed_forward_length", u32(o.feedForwardLength)],
    ["llama.attention.head_count", u32(o.heads)],
    ["llama.attention.head_count_kv", u32(o.heads)],
    ["llama.rope.dimension_count", u32(o.embeddingLength / o.heads)],
    ["llama.rope.freq_base", { type: "f32", value: 10000 }],
    ["llama.attention.layer_norm_rms_epsilon", { type: "f32", value: 1e-5 }],
    ["llama.vocab_size", u32(vocab.tokens.length)],
    ...vocabMetadata(vocab),
  ];
  return encodeGguf({ metadata, tensors: buildTensors(o, vocab.tokens.length) });
}

/** Writes the demo model to `path` (atomically: a temp file renamed into place). */
export async function writeDemoModel(path: string, options: DemoModelOptions = {}): Promise<string> {
  const target = resolve(path);
  await mkdir(dirname(target), { recursive: true });
  const temp = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(temp, Buffer.concat(encodeDemoModel(options)));
    await rename(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return target;
}

/** Path of the default demo model in `cacheDir`, generated on first use. */
export async function ensureDemoModel(cacheDir: string): Promise<string> {
  const path = resolve(join(cacheDir, DEMO_MODEL_FILE));
  if (existsSync(path)) return path;
  // Concurrent callers each write their own temp file; the renames race harmlessly (same bytes).
  return writeDemoModel(path);
}
