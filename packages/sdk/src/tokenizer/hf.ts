import { Tokenizer as HfLibTokenizer } from "@huggingface/tokenizers";
import { FormatError } from "../errors.js";
import type { SpecialToken, Tokenizer } from "./tokenizer.js";

/**
 * A Hugging Face `tokenizer.json` (BPE, WordPiece, Unigram, with their normalizers, pre-tokenizers and
 * decoders), run by the `@huggingface/tokenizers` library (pure JS, no dependencies: Node and browsers).
 * Stored in `.flm` files as tokenizer kind "hf": a JSON object `{ tokenizer, config }` holding
 * `tokenizer.json` and (optionally) `tokenizer_config.json`.
 */
export class HfTokenizer implements Tokenizer {
  readonly defaultStopTokens: readonly number[];
  /** `bos_token` / `eos_token` of `tokenizer_config.json`, when the vocabulary has them. */
  readonly bos?: SpecialToken;
  readonly eos?: SpecialToken;
  private readonly lib: HfLibTokenizer;
  private readonly enc = new TextEncoder();

  constructor(tokenizerJson: object, config: Record<string, unknown> = {}, readonly vocabSize: number) {
    this.lib = guard("load", () => new HfLibTokenizer(tokenizerJson, config));
    this.bos = this.special(config.bos_token);
    this.eos = this.special(config.eos_token);
    this.defaultStopTokens = this.eos ? [this.eos.id] : [];
  }

  /** A `bos_token`/`eos_token` entry (a string, or an added-token object with `content`) with its id. */
  private special(v: unknown): SpecialToken | undefined {
    const text = typeof v === "string" ? v : (v as { content?: unknown } | null | undefined)?.content;
    if (typeof text !== "string") return undefined;
    const id = this.specialTokenId(text);
    return id === undefined ? undefined : { text, id };
  }

  specialTokenId(text: string): number | undefined {
    const id = guard("token_to_id", () => this.lib.token_to_id(text));
    return typeof id === "number" && Number.isInteger(id) && id >= 0 && id < this.vocabSize ? id : undefined;
  }

  /** The library splits out added tokens (`<s>`, `<|im_start|>`) itself; no BOS or post-processing added. */
  encodeSpecial(text: string): number[] {
    return this.checked(guard("encode", () => this.lib.encode(text, { add_special_tokens: false }).ids));
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
    if (doc.config !== undefined && (typeof doc.config !== "object" || doc.config === null)) throw new FormatError("BAD_TOKENIZER", "hf tokenizer: config is not an object");
    checkIds(doc.tokenizer as TokenizerJson, vocabSize);
    return new HfTokenizer(doc.tokenizer, (doc.config ?? {}) as Record<string, unknown>, vocabSize);
  }

  encode(text: string, bos = true): number[] {
    return this.checked(guard("encode", () => this.lib.encode(text, { add_special_tokens: bos }).ids));
  }

  /** The library trusts its file; we do not: every id must index the model's embedding. */
  private checked(ids: number[]): number[] {
    for (const id of ids) {
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) throw new FormatError("BAD_TOKENIZER", `tokenizer.json produced token id ${String(id)}, outside the model's vocabulary of ${this.vocabSize}`);
    }
    return ids;
  }

  /**
   * The text `token` adds after `prev`: decoded as a pair minus `prev` alone, because decoders such as
   * Metaspace and byte-level BPE only give a token's leading space in context. (A character split over
   * two byte-level tokens shows as U+FFFD until its last byte.)
   */
  pieceBytes(prev: number, token: number): Uint8Array {
    const opts = { skip_special_tokens: true, clean_up_tokenization_spaces: false };
    return guard("decode", () => {
      const before = String(this.lib.decode([prev], opts));
      const both = String(this.lib.decode([prev, token], opts));
      return this.enc.encode(both.startsWith(before) ? both.slice(before.length) : String(this.lib.decode([token], opts)));
    });
  }
}

interface TokenizerJson {
  model?: { vocab?: unknown };
  added_tokens?: unknown;
}

/** Every id the file names (vocabulary and added tokens) is an integer inside the model's vocabulary. */
function checkIds(t: TokenizerJson, vocabSize: number): void {
  const bad = (what: string, v: unknown) => {
    throw new FormatError("BAD_TOKENIZER", `tokenizer.json: ${what} has id ${typeof v === "number" ? v : typeof v}, not an integer in [0, ${vocabSize})`);
  };
  const ok = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 0 && v < vocabSize;
  const vocab = t.model?.vocab;
  if (vocab === undefined || vocab === null || typeof vocab !== "object") throw new FormatError("BAD_TOKENIZER", "tokenizer.json: model.vocab is missing");
  // Unigram vocabularies are [piece, score] pairs whose index is the id; BPE/WordPiece map piece → id.
  if (!Array.isArray(vocab)) for (const [piece, id] of Object.entries(vocab)) if (!ok(id)) bad(`piece ${JSON.stringify(piece.slice(0, 20))}`, id);
  if (Array.isArray(vocab) && vocab.length > vocabSize) throw new FormatError("BAD_TOKENIZER", `tokenizer.json has ${vocab.length} pieces, the model's vocabulary ${vocabSize}`);
  if (t.added_tokens !== undefined) {
    if (!Array.isArray(t.added_tokens)) throw new FormatError("BAD_TOKENIZER", "tokenizer.json: added_tokens is not an array");
    for (const a of t.added_tokens as { id?: unknown; content?: unknown }[]) {
      if (typeof a !== "object" || a === null || typeof a.content !== "string") throw new FormatError("BAD_TOKENIZER", "tokenizer.json: an added token is malformed");
      if (!ok(a.id)) bad(`added token ${JSON.stringify(String(a.content).slice(0, 20))}`, a.id);
    }
  }
}

/** Runs a library call; anything it throws becomes a typed BAD_TOKENIZER error naming the step. */
function guard<T>(step: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError("BAD_TOKENIZER", `tokenizer.json (${step}): ${e instanceof Error ? e.message : String(e)}`);
  }
}
