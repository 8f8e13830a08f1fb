/** What the engine needs of a tokenizer; implemented by the llama2.c and the character tokenizers. */
export interface Tokenizer {
  readonly vocabSize: number;
  /** Token ids of `text`; `bos` prepends the begin-of-sequence token where the vocabulary has one. */
  encode(text: string, bos?: boolean, eos?: boolean): number[];
  /** The bytes `token` contributes to the text after `prev`. */
  pieceBytes(prev: number, token: number): Uint8Array;
  /** Tokens that end generation by default (BOS for llama2.c models, as run.c does; none for char models). */
  readonly defaultStopTokens: readonly number[];
}
