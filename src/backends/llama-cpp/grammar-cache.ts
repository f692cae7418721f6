/**
 * response_format → a compiled node-llama-cpp grammar. A batch usually repeats one schema on every
 * line, so grammars are cached by their schema text (a small LRU); compiling one per request
 * would cost more than generating a short answer.
 */
import type { GbnfJsonSchema, Llama, LlamaGrammar } from "node-llama-cpp";
import { invalidRequest } from "../../errors.js";
import { normalize } from "./json-schema.js";
import type { ResponseFormat } from "./request-params.js";

const MAX_CACHED = 64;

type GrammarFactory = Pick<Llama, "getGrammarFor" | "createGrammarForJsonSchema">;
type SchemaArgument = Parameters<GrammarFactory["createGrammarForJsonSchema"]>[0];

export class GrammarCache {
  readonly #llama: GrammarFactory;
  readonly #cache = new Map<string, Promise<LlamaGrammar>>();

  constructor(llama: GrammarFactory) {
    this.#llama = llama;
  }

  /** The grammar enforcing `format`, or undefined for plain text. Throws a 400 for unsupported schemas. */
  async forFormat(format: ResponseFormat): Promise<LlamaGrammar | undefined> {
    if (format.type === "text") return undefined;
    const schema = format.type === "json_schema" ? normalize(format.schema) : null;
    const key = schema === null ? "json_object" : JSON.stringify(schema);
    let grammar = this.#cache.get(key);
    if (grammar === undefined) {
      grammar =
        schema === null
          ? this.#llama.getGrammarFor("json")
          : // normalize() has checked the schema against the subset GbnfJsonSchema describes.
            this.#llama.createGrammarForJsonSchema(schema as GbnfJsonSchema as SchemaArgument);
      this.#cache.set(key, grammar);
      if (this.#cache.size > MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value ?? key);
    } else {
      // Refresh recency.
      this.#cache.delete(key);
      this.#cache.set(key, grammar);
    }
    try {
      return await grammar;
    } catch (err) {
      this.#cache.delete(key);
      throw invalidRequest(
        `Could not compile response_format schema: ${err instanceof Error ? err.message : String(err)}`,
        "response_format",
        "unsupported_json_schema",
      );
    }
  }
}
