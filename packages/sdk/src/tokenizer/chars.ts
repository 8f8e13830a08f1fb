import { FlashError, FormatError } from "../errors.js";
import type { Tokenizer } from "./tokenizer.js";

/**
 * A character-level vocabulary (Karpathy-lecture GPTs): token i is the i-th string of a JSON array.
 * There is no BOS: a prompt must not be empty. Stored in `.flm` files as tokenizer kind "chars".
 */
export class CharTokenizer implements Tokenizer {
  readonly defaultStopTokens: readonly number[] = [];
  private readonly ids = new Map<string, number>();
  private readonly bytes: Uint8Array[];
  constructor(readonly pieces: readonly string[]) {
    const enc = new TextEncoder();
    this.bytes = pieces.map((p) => enc.encode(p));
    pieces.forEach((p, i) => this.ids.set(p, i));
  }

  /** Parses the stored JSON array of pieces; `vocabSize` comes from the model. */
  static parse(bytes: Uint8Array, vocabSize: number): CharTokenizer {
    let pieces: unknown;
    try {
      pieces = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      throw new FormatError("BAD_TOKENIZER", "character tokenizer: not a JSON array of strings");
    }
    if (!Array.isArray(pieces) || !pieces.every((p) => typeof p === "string")) throw new FormatError("BAD_TOKENIZER", "character tokenizer: not a JSON array of strings");
    if (pieces.length !== vocabSize) throw new FormatError("BAD_TOKENIZER", `character tokenizer has ${pieces.length} pieces, the model ${vocabSize}`, { expected: vocabSize, actual: pieces.length });
    return new CharTokenizer(pieces as string[]);
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const ch of text) {
      const id = this.ids.get(ch);
      if (id === undefined) throw new FlashError("BAD_ARGUMENT", `character ${JSON.stringify(ch)} is not in this model's vocabulary`);
      out.push(id);
    }
    if (out.length === 0) throw new FlashError("BAD_ARGUMENT", "this model has no begin-of-sequence token: give a non-empty prompt");
    return out;
  }

  pieceBytes(_prev: number, token: number): Uint8Array {
    const b = this.bytes[token];
    if (!b) throw new FormatError("BAD_TOKENIZER", `token id ${token} is outside the vocabulary of ${this.pieces.length}`);
    return b;
  }
}
