import { Template } from "@huggingface/jinja";
import { FlashError } from "../errors.js";

/** One message of a conversation, as OpenAI's and Hugging Face's chat formats have it. */
export interface ChatMessage {
  /** "system", "user", "assistant" (or any role the model's template knows). */
  role: string;
  content: string;
}

/** What a chat template is given besides the messages (Hugging Face's `apply_chat_template` names). */
export interface ChatTemplateContext {
  /** End the prompt with the header of an assistant turn, so the model writes the reply. */
  add_generation_prompt: boolean;
  /** Spelling of the begin/end-of-sequence tokens ("" when the vocabulary has none). */
  bos_token: string;
  eos_token: string;
}

/**
 * A model's chat template: Jinja, as Hugging Face's `tokenizer_config.json` (`chat_template`) and
 * GGUF (`tokenizer.chat_template`) store it, run by `@huggingface/jinja` (the implementation
 * transformers.js uses). Parsed once; any failure, including a template's own `raise_exception`, is a
 * BAD_CHAT_TEMPLATE error.
 */
export class ChatTemplate {
  private readonly template: Template;

  constructor(readonly source: string) {
    this.template = guard("parse", () => new Template(source));
  }

  /** The prompt text for `messages`: the template rendered with them and `context`. */
  render(messages: readonly ChatMessage[], context: ChatTemplateContext): string {
    checkMessages(messages);
    const out = guard("render", () => this.template.render({ messages: messages.map((m) => ({ ...m })), ...context }));
    if (typeof out !== "string") throw new FlashError("BAD_CHAT_TEMPLATE", `the chat template rendered ${typeof out}, not text`);
    return out;
  }
}

/** Messages must be a non-empty array of `{ role: string, content: string }`. */
export function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0) throw new FlashError("BAD_ARGUMENT", "messages must be a non-empty array of { role, content }");
  messages.forEach((m, i) => {
    if (typeof m !== "object" || m === null) throw new FlashError("BAD_ARGUMENT", `messages[${i}] is not an object`, { index: i });
    if (typeof m.role !== "string" || m.role === "") throw new FlashError("BAD_ARGUMENT", `messages[${i}].role must be a non-empty string`, { index: i });
    if (typeof m.content !== "string") throw new FlashError("BAD_ARGUMENT", `messages[${i}].content must be a string`, { index: i });
  });
}

/**
 * The chat template of a Hugging Face `tokenizer_config.json`: its `chat_template` string, or, when it
 * lists several (`[{ name, template }]`), the one named "default". Undefined when it has none.
 */
export function chatTemplateFromTokenizerConfig(config: unknown): string | undefined {
  const t = (config as { chat_template?: unknown } | null | undefined)?.chat_template;
  if (typeof t === "string") return t || undefined;
  if (Array.isArray(t)) {
    const d = t.find((e) => (e as { name?: unknown })?.name === "default") as { template?: unknown } | undefined;
    return typeof d?.template === "string" ? d.template : undefined;
  }
  return undefined;
}

function guard<T>(step: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof FlashError) throw e;
    // RangeError: a template whose macros recurse without end overflows the stack.
    throw new FlashError("BAD_CHAT_TEMPLATE", `chat template (${step}): ${e instanceof Error ? e.message : String(e)}`, { step });
  }
}
