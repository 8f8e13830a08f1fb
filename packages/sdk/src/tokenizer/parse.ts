import { FlashError } from "../errors.js";
import { CharTokenizer } from "./chars.js";
import { HfTokenizer } from "./hf.js";
import { Llama2cTokenizer } from "./llama2c.js";
import type { Tokenizer } from "./tokenizer.js";

/** The tokenizer stored in a `.flm` tokenizer section, by its manifest kind. */
export function parseTokenizer(kind: string, bytes: Uint8Array, vocabSize: number): Tokenizer {
  switch (kind) {
    case "llama2c":
      return Llama2cTokenizer.parse(bytes, vocabSize);
    case "chars":
      return CharTokenizer.parse(bytes, vocabSize);
    case "hf":
      return HfTokenizer.parse(bytes, vocabSize);
    default:
      throw new FlashError("UNSUPPORTED", `no tokenizer of kind "${kind}"`);
  }
}
