/**
 * The demo model's tokenizer: a SentencePiece-style ("llama") vocabulary with no merges, only the
 * three classic specials, the 256 byte-fallback tokens, two ChatML control tokens and "▁" (the
 * SentencePiece space). llama.cpp tokenizes any text through byte fallback, so a prompt costs one
 * token per UTF-8 byte (plus the specials the chat template inserts).
 */
import type { GgufValue } from "./gguf-writer.js";

/** llama.cpp token types (llama_token_type). */
const TokenType = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

export const CHATML_TEMPLATE =
  "{% for message in messages %}" +
  "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface DemoVocab {
  tokens: string[];
  types: number[];
  bosId: number;
  eosId: number;
  unkId: number;
  imEndId: number;
}

export function buildDemoVocab(): DemoVocab {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TokenType.unknown, TokenType.control, TokenType.control];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TokenType.byte);
  }
  tokens.push("<|im_start|>", "<|im_end|>");
  types.push(TokenType.control, TokenType.control);
  const imEndId = tokens.length - 1;
  // SPM rewrites " " as "▁" before lookup; a token for it keeps a space at one token, not three.
  tokens.push("\u2581");
  types.push(TokenType.normal);
  return { tokens, types, bosId: 1, eosId: 2, unkId: 0, imEndId };
}

/** The `tokenizer.*` metadata for the vocabulary, in GGUF key/value form. */
export function vocabMetadata(vocab: DemoVocab): Array<[string, GgufValue]> {
  return [
    ["tokenizer.ggml.model", { type: "string", value: "llama" }],
    ["tokenizer.ggml.tokens", { type: "array", itemType: "string", values: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: "array", itemType: "f32", values: vocab.tokens.map(() => 0) }],
    ["tokenizer.ggml.token_type", { type: "array", itemType: "i32", values: vocab.types }],
    ["tokenizer.ggml.bos_token_id", { type: "u32", value: vocab.bosId }],
    ["tokenizer.ggml.eos_token_id", { type: "u32", value: vocab.eosId }],
    ["tokenizer.ggml.unknown_token_id", { type: "u32", value: vocab.unkId }],
    ["tokenizer.ggml.eot_token_id", { type: "u32", value: vocab.imEndId }],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
    ["tokenizer.ggml.add_eos_token", { type: "bool", value: false }],
    // Without a space prefix a prompt's token count is exactly its UTF-8 byte count (+ BOS).
    ["tokenizer.ggml.add_space_prefix", { type: "bool", value: false }],
    ["tokenizer.chat_template", { type: "string", value: CHATML_TEMPLATE }],
  ];
}
