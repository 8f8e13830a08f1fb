import { Tokenizer as HfLibTokenizer } from "@huggingface/tokenizers";
import { FormatError } from "../errors.js";
import type { Tokenizer } from "./tokenizer.js";

/**
 * A Hugging Face `tokenizer.json` (BPE, WordPiece, Unigram, with their normalizers, pre-tokenizers and
 * decoders), run by the `@huggingface/tokenizers` library (pure JS, no dependencies: Node and browsers).
 * Stored in `.flm` files as tokenizer kind "hf": a JSON object `{ tokenizer, config }` holding
 * `tokenizer.json` and (optionally) `tokenizer_config.json`.
 */
export class HfTokenizer implements Tokenizer {
  readonly defaultStopTokens: readonly number[];
  private readonly lib: HfLibTokenizer;
  private readonly enc = new TextEncoder();

  constructor(tokenizerJson: object, config: Record<string, unknown> = {}, readonly vocabSize: number) {
    try {
      this.lib = new HfLibTokenizer(tokenizerJson, config);
    } catch (e) {
      throw new FormatError("BAD_TOKENIZER", `tokenizer.json: ${(e as Error).message}`);
    }
    const eos = typeof config.eos_token === "string" ? config.eos_token : (config.eos_token as { content?: string } | undefined)?.content;
    const eosId = eos !== undefined ? this.lib.token_to_id(eos) : undefined;
    this.defaultStopTokens = eosId !== undefined ? [eosId] : [];
  }

  /** Parses the stored `{ tokenizer, config }` JSON; the model's vocabulary must hold every id. */
  static parse(bytes: Uint8Array, vocabSize: number): HfTokenizer {
    let doc: { tokenizer?: unknown; config?: unknown };
    try {
      doc = JSON.parse(new TextDecoder().decode(bytes)) as typeof doc;
    } catch {
      throw new FormatError("BAD_TOKENIZER", "hf tokenizer: not JSON");
    }
    if (typeof doc?.tokenizer !== "object" || doc.tokenizer === null) throw new FormatError("BAD_TOKENIZER", 'hf tokenizer: no "tokenizer" object (tokenizer.json)');
    const t = new HfTokenizer(doc.tokenizer, (doc.config ?? {}) as Record<string, unknown>, vocabSize);
    const model = (doc.tokenizer as { model?: { vocab?: unknown } }).model;
    const size = model?.vocab && typeof model.vocab === "object" ? Object.keys(model.vocab).length : 0;
    if (size > vocabSize) throw new FormatError("BAD_TOKENIZER", `tokenizer.json has ${size} tokens, the model's vocabulary ${vocabSize}`, { expected: vocabSize, actual: size });
    return t;
  }

  encode(text: string, bos = true): number[] {
    return this.lib.encode(text, { add_special_tokens: bos }).ids;
  }

  /**
   * The text `token` adds after `prev`: decoded as a pair minus `prev` alone, because decoders such as
   * Metaspace and byte-level BPE only give a token's leading space in context. (A character split over
   * two byte-level tokens shows as U+FFFD until its last byte.)
   */
  pieceBytes(prev: number, token: number): Uint8Array {
    const opts = { skip_special_tokens: true, clean_up_tokenization_spaces: false };
    const before = this.lib.decode([prev], opts);
    const both = this.lib.decode([prev, token], opts);
    return this.enc.encode(both.startsWith(before) ? both.slice(before.length) : this.lib.decode([token], opts));
  }
}
