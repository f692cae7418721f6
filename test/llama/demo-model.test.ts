import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, LlamaCompletion, readGgufFileInfo } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEMO_MODEL_FILE, ensureDemoModel, writeDemoModel } from "../../src/demo-model/demo-model.js";
import { encodeGguf, toFloat16Bits } from "../../src/demo-model/gguf-writer.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "sluice-demo-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("gguf writer", () => {
  it("converts floats to IEEE half precision", () => {
    expect(toFloat16Bits(0)).toBe(0x0000);
    expect(toFloat16Bits(-0)).toBe(0x8000);
    expect(toFloat16Bits(1)).toBe(0x3c00);
    expect(toFloat16Bits(-2)).toBe(0xc000);
    expect(toFloat16Bits(65504)).toBe(0x7bff);
    expect(toFloat16Bits(1e6)).toBe(0x7c00); // overflow → +inf
    expect(toFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(toFloat16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
  });

  it("aligns the data section and every tensor", () => {
    const buf = Buffer.concat(
      encodeGguf({
        metadata: [["general.architecture", { type: "string", value: "x" }]],
        tensors: [
          { name: "a", dims: [3], type: "f32", data: new Float32Array([1, 2, 3]) },
          { name: "b", dims: [2], type: "f16", data: new Float32Array([1, -2]) },
        ],
      }),
    );
    expect(buf.readUInt32LE(0)).toBe(0x46554747);
    expect(buf.readUInt32LE(4)).toBe(3);
    expect(buf.length % 32).toBe(0);
    // a: 12 bytes at data offset 0; b at the next 32-byte boundary.
    const dataStart = buf.length - 64;
    expect(buf.readFloatLE(dataStart + 8)).toBe(3);
    expect(buf.readUInt16LE(dataStart + 32)).toBe(0x3c00);
    expect(buf.readUInt16LE(dataStart + 34)).toBe(0xc000);
  });

  it("rejects data that does not match the dims", () => {
    expect(() =>
      encodeGguf({ metadata: [], tensors: [{ name: "a", dims: [2, 2], type: "f32", data: new Float32Array(3) }] }),
    ).toThrow(/tensor a/);
  });
});

describe("demo model", () => {
  it("writes a llama GGUF that node-llama-cpp parses, deterministic per seed", async () => {
    const a = await writeDemoModel(join(dir, "a.gguf"), { seed: 7 });
    const b = await writeDemoModel(join(dir, "b.gguf"), { seed: 7 });
    const c = await writeDemoModel(join(dir, "c.gguf"), { seed: 8, tensorType: "f16" });
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
    expect((await stat(c)).size).toBeLessThan((await stat(a)).size);
    expect((await stat(a)).size).toBeLessThan(8 * 1024 * 1024);

    const info = await readGgufFileInfo(a);
    expect(info.version).toBe(3);
    const md = info.metadata as unknown as {
      general: { architecture: string };
      llama: { context_length: number; block_count: number; attention: { head_count: number } };
      tokenizer: { ggml: { model: string; tokens: string[] }; chat_template: string };
    };
    expect(md.general.architecture).toBe("llama");
    expect(md.llama.context_length).toBe(2048);
    expect(md.llama.block_count).toBe(2);
    expect(md.llama.attention.head_count).toBe(4);
    expect(md.tokenizer.ggml.model).toBe("llama");
    expect(md.tokenizer.ggml.tokens.slice(0, 4)).toEqual(["<unk>", "<s>", "</s>", "<0x00>"]);
    expect(md.tokenizer.chat_template).toContain("<|im_start|>");
    expect(info.tensorInfo?.map((t) => t.name)).toContain("blk.1.ffn_down.weight");
  });

  it("loads and generates in llama.cpp, in f32 and f16", async () => {
    const llama = await getLlama({ gpu: false, build: "never" });
    try {
      for (const tensorType of ["f32", "f16"] as const) {
        const path = await writeDemoModel(join(dir, `run-${tensorType}.gguf`), { tensorType });
        const model = await llama.loadModel({ modelPath: path });
        expect(model.fileInsights.getWarnings()).toEqual([]);
        // Byte-level vocabulary: one token per UTF-8 byte, the SentencePiece space as one token.
        expect(model.tokenize("hi there", false)).toHaveLength(8);
        expect(model.detokenize(model.tokenize("héllo wörld", false))).toBe("héllo wörld");
        const context = await model.createContext({ contextSize: 256, threads: 1 });
        const sequence = context.getSequence();
        await new LlamaCompletion({ contextSequence: sequence }).generateCompletion("hi", { maxTokens: 4 });
        expect(sequence.tokenMeter.usedOutputTokens).toBeGreaterThan(0);
        await context.dispose();
        await model.dispose();
      }
    } finally {
      await llama.dispose();
    }
  });

  it("ensureDemoModel generates once into the cache and leaves no temp files", async () => {
    const cache = join(dir, "cache");
    const [p1, p2] = await Promise.all([ensureDemoModel(cache), ensureDemoModel(cache)]);
    expect(p1).toBe(join(cache, DEMO_MODEL_FILE));
    expect(p2).toBe(p1);
    const before = (await stat(p1)).mtimeMs;
    expect(await ensureDemoModel(cache)).toBe(p1);
    expect((await stat(p1)).mtimeMs).toBe(before);
    expect(await readdir(cache)).toEqual([DEMO_MODEL_FILE]);
  });

  it("rejects heads that do not divide the embedding", async () => {
    await expect(writeDemoModel(join(dir, "bad.gguf"), { embeddingLength: 100, heads: 3 })).rejects.toThrow(/multiple/);
  });
});
