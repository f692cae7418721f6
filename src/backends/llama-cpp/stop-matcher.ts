/**
 * Detects where generation must stop: on end-of-generation tokens, on single special tokens named
 * by the chat template (e.g. <|im_end|>), and on stop strings (the request's `stop`, a template's
 * textual end markers, a grammar's trailing-whitespace trigger) found in the decoded text.
 */
import type { LlamaModel, LlamaText, Token } from "node-llama-cpp";

export type StopTrigger = string | LlamaText | readonly (string | Token)[];

export class StopMatcher {
  readonly #model: LlamaModel;
  readonly #tokens = new Set<Token>();
  readonly #strings: string[] = [];
  readonly #longest: number;

  constructor(model: LlamaModel, triggers: readonly StopTrigger[]) {
    this.#model = model;
    for (const trigger of triggers) {
      const tokens = this.#toTokens(trigger);
      if (tokens.length === 1 && model.isSpecialToken(tokens[0])) this.#tokens.add(tokens[0]!);
      else if (typeof trigger === "string") this.#strings.push(trigger);
      else {
        const text = model.detokenize(tokens, false);
        if (text !== "") this.#strings.push(text);
      }
    }
    this.#longest = Math.max(0, ...this.#strings.map((s) => s.length));
  }

  #toTokens(trigger: StopTrigger): Token[] {
    if (typeof trigger === "string") return this.#model.tokenize(trigger, false);
    if (!Array.isArray(trigger)) return (trigger as LlamaText).tokenize(this.#model.tokenizer);
    return (trigger as readonly (string | Token)[]).flatMap((part) =>
      typeof part === "string" ? this.#model.tokenize(part, false) : [part],
    );
  }

  get hasStrings(): boolean {
    return this.#strings.length > 0;
  }

  isStopToken(token: Token): boolean {
    return this.#model.isEogToken(token) || this.#tokens.has(token);
  }

  /**
   * Whether the generation so far ends in a stop string. Only the last tokens are decoded: enough
   * to hold the longest stop string even at 4 byte-tokens per character, so a long answer costs
   * linear, not quadratic, detokenizing.
   */
  endsInStop(generated: readonly Token[]): boolean {
    const window = 4 * this.#longest + 4;
    const tail = this.#model.detokenize(generated.slice(-window), false, generated.slice(-window - 8, -window));
    return this.#strings.some((s) => tail.includes(s));
  }

  /** Index of the earliest stop string in `text`, or -1. */
  firstIndex(text: string): number {
    let best = -1;
    for (const s of this.#strings) {
      const at = text.indexOf(s);
      if (at >= 0 && (best < 0 || at < best)) best = at;
    }
    return best;
  }
}
