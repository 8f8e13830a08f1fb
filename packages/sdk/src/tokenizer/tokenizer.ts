/** A special token as a chat template spells it (`bos_token`, `eos_token`) and its id. */
export interface SpecialToken {
  text: string;
  id: number;
}

/** What the engine needs of a tokenizer; implemented by the llama2.c and the character tokenizers. */
export interface Tokenizer {
  readonly vocabSize: number;
  /** Token ids of `text`; `bos` prepends the begin-of-sequence token where the vocabulary has one. */
  encode(text: string, bos?: boolean, eos?: boolean): number[];
  /** The bytes `token` contributes to the text after `prev`. */
  pieceBytes(prev: number, token: number): Uint8Array;
  /** Tokens that end generation by default (BOS for llama2.c models, as run.c does; none for char models). */
  readonly defaultStopTokens: readonly number[];
  /** Begin-of-sequence token, where the vocabulary has one (chat templates render it as `bos_token`). */
  readonly bos?: SpecialToken;
  /** End-of-sequence token, where the vocabulary has one (`eos_token`). */
  readonly eos?: SpecialToken;
  /**
   * Ids of text in which special tokens are spelled out, as a chat template renders them (`<s>`,
   * `<|im_end|>`): each becomes its one id instead of the characters. Adds no BOS. Without this
   * method, chat encodes the rendered text with `encode(text, false)`.
   */
  encodeSpecial?(text: string): number[];
  /** The id of `text` when the vocabulary holds it as one special token (an end-of-turn marker such as `<|im_end|>`). */
  specialTokenId?(text: string): number | undefined;
}
