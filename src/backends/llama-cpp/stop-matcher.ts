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
   * Index of the earliest stop string in `text`, or -1. `checkedUpTo` is how much of `text` was
   * already searched, so each call only looks at the tail that could contain a new match.
   */
  find(text: string, checkedUpTo: number): number {
    // Slack of 3: an incomplete UTF-8 tail decodes as up to 3 U+FFFD that later collapse into one.
    const from = Math.max(0, checkedUpTo - this.#longest - 3);
    let best = -1;
    for (const s of this.#strings) {
      const at = text.indexOf(s, from);
      if (at >= 0 && (best < 0 || at < best)) best = at;
    }
    return best;
  }
}
