import { FlashError } from "../errors.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import type { ChatMessage } from "./template.js";
import type { ChatTemplate } from "./template.js";

/** A conversation turned into what `generate` needs. */
export interface ChatPrompt {
  /** The rendered template. */
  text: string;
  /** Its token ids, with exactly one BOS first when the model's tokenizer starts sequences with one. */
  tokens: number[];
  /** Ids that end the reply: the tokenizer's defaults, EOS, and end-of-turn markers of the template that are single tokens. */
  stopTokens: number[];
  /** End-of-turn markers of the template that are not single tokens in this vocabulary: the reply ends at their text. */
  stopText: string[];
}

/**
 * End-of-turn markers of the common template families (ChatML, Llama 3, Phi-3, Gemma, GPT-2-style).
 * The ones a template mentions end the reply, as `generation_config.json`'s extra EOS ids do in
 * transformers and the end-of-generation tokens do in llama.cpp.
 */
export const END_OF_TURN_MARKERS = ["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"] as const;

/**
 * Renders `messages` with `template` and encodes the result the way Hugging Face's
 * `apply_chat_template` + llama.cpp's server do: special tokens the template spells out (`bos_token`,
 * `<|im_start|>`) become their ids; then, if the tokenizer starts sequences with BOS
 * (`encode(…, true)` puts it first) and the template did not write it, BOS is put first. Never two.
 */
export function chatPrompt(tokenizer: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[], addGenerationPrompt = true): ChatPrompt {
  const text = template.render(messages, {
    add_generation_prompt: addGenerationPrompt,
    bos_token: tokenizer.bos?.text ?? "",
    eos_token: tokenizer.eos?.text ?? "",
  });
  const tokens = tokenizer.encodeSpecial ? tokenizer.encodeSpecial(text) : tokenizer.encode(text, false);
  const bos = tokenizer.bos?.id;
  if (bos !== undefined && tokens[0] !== bos && startsWithBos(tokenizer, bos)) tokens.unshift(bos);
  if (tokens.length === 0) throw new FlashError("BAD_CHAT_TEMPLATE", "the chat template rendered no tokens for these messages");
  const stopTokens = new Set(tokenizer.defaultStopTokens);
  if (tokenizer.eos) stopTokens.add(tokenizer.eos.id);
  const stopText: string[] = [];
  for (const marker of END_OF_TURN_MARKERS) {
    if (!template.source.includes(marker)) continue;
    const id = tokenizer.specialTokenId?.(marker);
    if (id !== undefined) stopTokens.add(id);
    else stopText.push(marker);
  }
  return { text, tokens, stopTokens: [...stopTokens], stopText };
}

/** Whether the tokenizer puts BOS at the start of a sequence (llama2.c and Llama's tokenizers do; GPT-2 and Qwen's do not). */
function startsWithBos(tokenizer: Tokenizer, bos: number): boolean {
  try {
    return tokenizer.encode("a", true)[0] === bos;
  } catch {
    return false;
  }
}
