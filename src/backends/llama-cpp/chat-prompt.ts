/**
 * Renders chat messages through the model's own chat template (node-llama-cpp picks a wrapper
 * from the GGUF's `tokenizer.chat_template`) into prompt tokens, plus the texts that end the
 * assistant's turn, so chat runs on the same completion path as /v1/completions.
 */
import type { ChatHistoryItem, ChatWrapper, LlamaText, Token, Tokenizer } from "node-llama-cpp";
import { invalidRequest } from "../../errors.js";
import type { ChatMessage } from "./request-params.js";

export interface RenderedChat {
  /** The full prompt, as the template renders it (a leading BOS included when it has one). */
  tokens: Token[];
  /** End-of-turn markers of the template, to stop on even when they are not EOG tokens. */
  stopTriggers: LlamaText[];
}

function toHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history = messages.map((m): ChatHistoryItem => {
    if (m.role === "system") return { type: "system", text: m.text };
    if (m.role === "user") return { type: "user", text: m.text };
    return { type: "model", response: [m.text] };
  });
  // An empty model turn at the end makes the template emit the assistant prefix.
  history.push({ type: "model", response: [] });
  return history;
}

export function renderChat(wrapper: ChatWrapper, tokenizer: Tokenizer, messages: readonly ChatMessage[]): RenderedChat {
  let state: ReturnType<ChatWrapper["generateContextState"]>;
  try {
    state = wrapper.generateContextState({ chatHistory: toHistory(messages) });
  } catch (err) {
    // Jinja templates may reject a conversation (e.g. roles that do not alternate).
    throw invalidRequest(
      `The model's chat template rejected the messages: ${err instanceof Error ? err.message : String(err)}`,
      "messages",
      "chat_template_error",
    );
  }
  return { tokens: state.contextText.tokenize(tokenizer), stopTriggers: state.stopGenerationTriggers };
}
