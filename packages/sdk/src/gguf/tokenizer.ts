import { FlashError, FormatError } from "../errors.js";
import type { TokenizerFile } from "../convert/from-llama2c.js";
import type { GgufFile } from "./reader.js";
import { metaReader } from "./reader.js";

/**
 * The tokenizer a GGUF file carries in its metadata (`tokenizer.ggml.*`), as a file flashllm's
 * tokenizers read:
 * - `model` "llama" (SentencePiece: pieces with `▁` for space, scores, byte pieces `<0xXX>` typed BYTE)
 *   → a llama2.c `tokenizer.bin` (run.c's encoder: dummy prefix, byte fallback, highest-score merges,
 *   which is what llama.cpp's SPM tokenizer does too). It needs llama2.c's fixed ids: BOS 1, EOS 2.
 * - `model` "gpt2" (byte-level BPE with `merges`) → a Hugging Face `tokenizer.json` run by
 *   `@huggingface/tokenizers`, with the pre-tokenizer regex named by `tokenizer.ggml.pre`.
 */

/** Token types of `tokenizer.ggml.token_type` (llama.cpp's llama_token_type). */
export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** What {@link ggufTokenizer} returns: the file to store, the special ids, and notes for provenance. */
export interface GgufTokenizer {
  file: TokenizerFile;
  bos?: number;
  eos?: number;
  /** Things the conversion could only approximate (recorded in the manifest's provenance). */
  notes: string[];
}

const enc = new TextEncoder();

/** Builds the tokenizer of `file` for a model of `vocabSize` tokens. */
export function ggufTokenizer(file: GgufFile, vocabSize: number): GgufTokenizer {
  const m = metaReader(file);
  const model = m.str("tokenizer.ggml.model");
  const tokens = m.strings("tokenizer.ggml.tokens");
  if (tokens.length !== vocabSize) {
    throw new FormatError("BAD_TOKENIZER", `GGUF: tokenizer.ggml.tokens has ${tokens.length} pieces, the model's embedding ${vocabSize} rows`, { pieces: tokens.length, vocabSize });
  }
  const types = m.has("tokenizer.ggml.token_type") ? m.numbers("tokenizer.ggml.token_type") : undefined;
  if (types && types.length !== tokens.length) throw new FormatError("BAD_TOKENIZER", `GGUF: tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`);
  const bos = m.has("tokenizer.ggml.bos_token_id") ? m.int("tokenizer.ggml.bos_token_id") : undefined;
  const eos = m.has("tokenizer.ggml.eos_token_id") ? m.int("tokenizer.ggml.eos_token_id") : undefined;
  for (const [name, id] of [["bos", bos], ["eos", eos]] as const) {
    if (id !== undefined && (id < 0 || id >= vocabSize)) throw new FormatError("BAD_TOKENIZER", `GGUF: ${name} token id ${id} is outside the vocabulary of ${vocabSize}`);
  }
  if (model === "llama") return { file: sentencePiece(tokens, m.has("tokenizer.ggml.scores") ? m.numbers("tokenizer.ggml.scores") : undefined, types, bos, eos), bos, eos, notes: [] };
  if (model === "gpt2") {
    const merges = m.strings("tokenizer.ggml.merges");
    return byteLevelBpe(tokens, merges, types, bos, eos, m.optStr("tokenizer.ggml.pre"), m.has("tokenizer.ggml.add_bos_token") ? file.get("tokenizer.ggml.add_bos_token") === true : false);
  }
  throw new FlashError("UNSUPPORTED", `GGUF: tokenizer model "${model}" is not supported ("llama" and "gpt2" are)`, { model });
}

function sentencePiece(tokens: string[], scores: number[] | undefined, types: number[] | undefined, bos?: number, eos?: number): TokenizerFile {
  if (scores && scores.length !== tokens.length) throw new FormatError("BAD_TOKENIZER", `GGUF: tokenizer.ggml.scores has ${scores.length} entries for ${tokens.length} tokens`);
  // run.c's tokenizer (ours) has llama2's fixed special ids; anything else would encode wrongly.
  if ((bos !== undefined && bos !== 1) || (eos !== undefined && eos !== 2)) {
    throw new FlashError("UNSUPPORTED", `GGUF: SentencePiece vocabulary with BOS ${bos} and EOS ${eos}; flashllm's llama tokenizer needs BOS 1 and EOS 2`, { bos, eos });
  }
  const pieces = tokens.map((t, id) => {
    // Byte pieces stay "<0xXX>" (decoded to the raw byte); ▁ is SentencePiece's space.
    if (types?.[id] === TokenType.BYTE) {
      if (!/^<0x[0-9A-F]{2}>$/.test(t)) throw new FormatError("BAD_TOKENIZER", `GGUF: token ${id} is typed BYTE but reads ${JSON.stringify(t.slice(0, 20))}`);
      return enc.encode(t);
    }
    return enc.encode(t.replaceAll("\u2581", " "));
  });
  const maxLen = Math.max(1, ...pieces.map((p) => p.byteLength));
  const size = 4 + pieces.reduce((s, p) => s + 8 + p.byteLength, 0);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setInt32(0, maxLen, true);
  let at = 4;
  pieces.forEach((p, id) => {
    dv.setFloat32(at, scores ? scores[id] : 0, true);
    dv.setInt32(at + 4, p.byteLength, true);
    out.set(p, at + 8);
    at += 8 + p.byteLength;
  });
  return { kind: "llama2c", bytes: out };
}

// Pre-tokenizer split patterns by `tokenizer.ggml.pre` (as llama.cpp's llama-vocab.cpp and the HF
// tokenizer.json files of these models define them).
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const PRE_PATTERNS: Record<string, string> = { default: GPT2_PATTERN, "gpt-2": GPT2_PATTERN, gpt2: GPT2_PATTERN, "llama-bpe": LLAMA3_PATTERN, llama3: LLAMA3_PATTERN, qwen2: QWEN2_PATTERN };

function byteLevelBpe(tokens: string[], merges: string[], types: number[] | undefined, bos: number | undefined, eos: number | undefined, pre: string | undefined, addBos: boolean): GgufTokenizer {
  const notes: string[] = [];
  let pattern = PRE_PATTERNS[pre ?? "default"];
  if (!pattern) {
    pattern = GPT2_PATTERN;
    notes.push(`tokenizer.ggml.pre "${pre}" is not known here: GPT-2's pre-tokenizer split is used, so prompts may tokenize differently from llama.cpp`);
  }
  const vocab: Record<string, number> = {};
  tokens.forEach((t, id) => {
    if (!(t in vocab)) vocab[t] = id;
  });
  const special = (id: number) => types?.[id] === TokenType.CONTROL || types?.[id] === TokenType.USER_DEFINED;
  const added = tokens.flatMap((t, id) => (special(id) || id === bos || id === eos ? [{ id, content: t, special: types?.[id] !== TokenType.USER_DEFINED, single_word: false, lstrip: false, rstrip: false, normalized: false }] : []));
  const bosTok = bos !== undefined ? tokens[bos] : undefined;
  const json = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: addBos && bosTok !== undefined
      ? { type: "TemplateProcessing", single: [{ SpecialToken: { id: bosTok, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }], pair: [], special_tokens: { [bosTok]: { id: bosTok, ids: [bos], tokens: [bosTok] } } }
      : null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  const config: Record<string, unknown> = {};
  if (bosTok !== undefined) config.bos_token = bosTok;
  if (eos !== undefined) config.eos_token = tokens[eos];
  return { file: { kind: "hf", bytes: enc.encode(JSON.stringify({ tokenizer: json, config })) }, bos, eos, notes };
}
