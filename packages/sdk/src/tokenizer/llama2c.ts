import { FormatError } from "../errors.js";
import type { SpecialToken, Tokenizer } from "./tokenizer.js";

/** Token ids fixed by the llama2.c/sentencepiece convention. */
export const BOS = 1;
export const EOS = 2;

/** How to encode characters that are not in the vocabulary. */
export type UnknownPolicy =
  /** run.c's rule: each UTF-8 byte b becomes id b+3 (right when the vocabulary has <0x00>…<0xFF> at 3…258). */
  | "byte-fallback"
  /** sentencepiece without byte fallback: the whole character becomes `<unk>` (id 0). */
  | "unk";

/**
 * The llama2.c tokenizer (`tokenizer.bin` / `tok512.bin`): a scored vocabulary of byte strings,
 * encoded by greedy highest-score pair merging exactly as karpathy's run.c does it.
 *
 * File layout: int32 max_token_length, then per id: float32 score, int32 length, `length` bytes.
 */
export class Llama2cTokenizer implements Tokenizer {
  /** run.c stops when BOS is sampled. */
  readonly defaultStopTokens: readonly number[] = [BOS];
  /** sentencepiece's `<s>` and `</s>` (llama2.c's export stores them as "\n<s>\n" and "\n</s>\n"). */
  readonly bos: SpecialToken = { text: "<s>", id: BOS };
  readonly eos: SpecialToken = { text: "</s>", id: EOS };
  /** Raw bytes of each piece, by id. */
  readonly pieces: readonly Uint8Array[];
  /** Merge score of each piece, by id. */
  readonly scores: Float32Array;
  readonly maxTokenLength: number;
  /** Chosen from the vocabulary: byte fallback when it holds the 256 byte pieces. */
  readonly unknownPolicy: UnknownPolicy;
  // Pieces as "binary strings" (one char per byte) so lookups compare bytes, as run.c's strcmp does.
  private readonly ids = new Map<string, number>();
  private readonly keys: string[];

  private constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    this.pieces = pieces;
    this.scores = scores;
    this.maxTokenLength = maxTokenLength;
    this.keys = pieces.map(binaryString);
    // run.c keeps the first id for a duplicated piece (bsearch over a stable sort finds one of them;
    // duplicates do not occur in real vocabularies, but first-wins is deterministic).
    this.keys.forEach((k, id) => {
      if (!this.ids.has(k)) this.ids.set(k, id);
    });
    const hasBytePieces = pieces.length >= 259 && this.keys[3] === "<0x00>" && this.keys[258] === "<0xFF>";
    this.unknownPolicy = hasBytePieces ? "byte-fallback" : "unk";
  }

  /** Number of pieces in the vocabulary. */
  get vocabSize(): number {
    return this.pieces.length;
  }

  /**
   * Parses a tokenizer file. `vocabSize` comes from the model header: the file holds exactly that many
   * pieces, and anything else is reported with both numbers.
   */
  static parse(bytes: Uint8Array, vocabSize: number): Llama2cTokenizer {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const fail = (code: "TRUNCATED" | "BAD_TOKENIZER", msg: string, details: Record<string, unknown> = {}) => {
      throw new FormatError(code, `tokenizer: ${msg}`, details);
    };
    if (bytes.byteLength < 4) fail("TRUNCATED", `file is ${bytes.byteLength} bytes, shorter than its 4-byte header`);
    const maxTokenLength = dv.getInt32(0, true);
    if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) fail("BAD_TOKENIZER", `bad max_token_length ${maxTokenLength}`);
    // Each entry takes at least 8 bytes: check before allocating for `vocabSize` entries, so a model
    // header's vocabulary size cannot make a small tokenizer file allocate megabytes.
    if (4 + 8 * vocabSize > bytes.byteLength) {
      const entry = Math.max(0, Math.floor((bytes.byteLength - 4) / 8));
      fail("TRUNCATED", `file ends at byte ${bytes.byteLength} inside entry ${entry} of ${vocabSize} or earlier (entries take 8 bytes or more)`, { expectedPieces: vocabSize, actualBytes: bytes.byteLength });
    }
    const pieces: Uint8Array[] = [];
    const scores = new Float32Array(vocabSize);
    let p = 4;
    for (let id = 0; id < vocabSize; id++) {
      if (p + 8 > bytes.byteLength) {
        fail("TRUNCATED", `file ends at byte ${bytes.byteLength} inside entry ${id} of ${vocabSize}`, { expectedPieces: vocabSize, actualPieces: id });
      }
      scores[id] = dv.getFloat32(p, true);
      const len = dv.getInt32(p + 4, true);
      p += 8;
      if (len < 0 || len > maxTokenLength) {
        fail("BAD_TOKENIZER", `piece ${id} has length ${len}, outside 0…${maxTokenLength}`, { id, length: len });
      }
      if (p + len > bytes.byteLength) {
        fail("TRUNCATED", `piece ${id} needs bytes ${p}…${p + len} but the file has ${bytes.byteLength}`, { id });
      }
      pieces.push(bytes.slice(p, p + len));
      p += len;
    }
    if (p !== bytes.byteLength) {
      fail("BAD_TOKENIZER", `${bytes.byteLength - p} bytes follow the ${vocabSize} pieces the model expects: wrong tokenizer for this model?`, {
        expectedBytes: p,
        actualBytes: bytes.byteLength,
      });
    }
    return new Llama2cTokenizer(pieces, scores, maxTokenLength);
  }

  private lookup(key: string): number {
    return this.ids.get(key) ?? -1;
  }

  /** Encodes text as run.c's `encode(text, bos, eos)` does. */
  encode(text: string, bos = true, eos = false): number[] {
    const tokens: number[] = [];
    if (bos) tokens.push(BOS);
    const utf8 = new TextEncoder().encode(text);
    // run.c prepends the dummy-prefix piece " " to any non-empty text (sentencepiece's add_dummy_prefix).
    if (utf8.length > 0) {
      const space = this.lookup(" ");
      if (space >= 0) tokens.push(space);
    }
    // One codepoint at a time: its UTF-8 bytes are looked up as one piece, else fall back.
    for (let i = 0; i < utf8.length; ) {
      let end = i + 1;
      while (end < utf8.length && (utf8[end] & 0xc0) === 0x80 && end - i < 4) end++;
      const id = this.lookup(binaryString(utf8.subarray(i, end)));
      if (id >= 0) tokens.push(id);
      else if (this.unknownPolicy === "byte-fallback") for (let b = i; b < end; b++) tokens.push(utf8[b] + 3);
      else tokens.push(0);
      i = end;
    }
    const merged = this.mergePairs(tokens);
    if (eos) merged.push(EOS);
    return merged;
  }

  /**
   * run.c's merge loop: repeatedly merge the adjacent pair whose merged piece scores highest (the
   * leftmost of equal scores), until no pair merges. run.c rescans the whole list per merge, O(n²);
   * here candidate pairs wait in a max-heap ordered by (score, position) over a linked list of
   * tokens, and an entry whose tokens have since merged is skipped when it surfaces: O(n log n), the
   * same merges in the same order.
   */
  private mergePairs(tokens: number[]): number[] {
    const n = tokens.length;
    const id = Int32Array.from(tokens);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    // A node's version changes whenever its token changes or it merges away, invalidating heap entries.
    const version = new Int32Array(n);
    const heap = new PairHeap();
    const push = (left: number) => {
      const right = next[left];
      if (right < 0) return;
      const m = this.lookup(this.keys[id[left]] + this.keys[id[right]]);
      if (m >= 0) heap.push({ score: this.scores[m], left, right, merged: m, leftVersion: version[left], rightVersion: version[right] });
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    for (let e = heap.pop(); e; e = heap.pop()) {
      if (version[e.left] !== e.leftVersion || version[e.right] !== e.rightVersion || next[e.left] !== e.right) continue;
      id[e.left] = e.merged;
      version[e.left]++;
      version[e.right] = -1; // gone
      const after = next[e.right];
      next[e.left] = after;
      if (after >= 0) prev[after] = e.left;
      if (prev[e.left] >= 0) push(prev[e.left]);
      push(e.left);
    }
    const out: number[] = [];
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(id[i]);
    return out;
  }

  /**
   * Text with `<s>` and `</s>` spelled out (a rendered chat template): those become BOS and EOS, and
   * the text between them is encoded as `encode(part, false)` (with its dummy-prefix space, as
   * sentencepiece's Llama tokenizer does after a special token).
   */
  encodeSpecial(text: string): number[] {
    const out: number[] = [];
    for (const part of text.split(/(<\/?s>)/)) {
      if (part === "<s>") out.push(BOS);
      else if (part === "</s>") out.push(EOS);
      else if (part !== "") out.push(...this.encode(part, false));
    }
    return out;
  }

  specialTokenId(text: string): number | undefined {
    return text === "<s>" ? BOS : text === "</s>" ? EOS : undefined;
  }

  /**
   * The bytes `token` contributes after `prev`: run.c's `decode`. A leading space is dropped right after
   * BOS, and `<0xXX>` pieces become the raw byte.
   */
  pieceBytes(prev: number, token: number): Uint8Array {
    if (token < 0 || token >= this.pieces.length) throw new FormatError("BAD_TOKENIZER", `token id ${token} is outside the vocabulary of ${this.pieces.length}`);
    let piece = this.pieces[token];
    if (prev === BOS && piece[0] === 0x20) piece = piece.subarray(1);
    const m = /^<0x([0-9A-F]{2})>$/.exec(this.keys[token]);
    if (m) return Uint8Array.of(parseInt(m[1], 16));
    return piece;
  }

  /** Decodes a whole token sequence (the first token is taken as context, as in generation). */
  decode(tokens: readonly number[]): string {
    const dec = new TextDecoder();
    let out = "";
    for (let i = 1; i < tokens.length; i++) out += dec.decode(this.pieceBytes(tokens[i - 1], tokens[i]), { stream: true });
    return out + dec.decode();
  }
}

/** run.c's `safe_printf` filter: drops single-byte pieces that are neither printable ASCII nor whitespace. */
export function runcPrintable(piece: Uint8Array): Uint8Array {
  if (piece.length === 0) return piece;
  if (piece.length === 1) {
    const b = piece[0];
    const isPrint = b >= 0x20 && b <= 0x7e;
    const isSpace = b === 0x20 || (b >= 0x09 && b <= 0x0d);
    if (!isPrint && !isSpace) return piece.subarray(0, 0);
  }
  return piece;
}

interface PairEntry {
  score: number;
  /** Node indices; `left` is also the pair's position, since nodes keep their text order. */
  left: number;
  right: number;
  merged: number;
  leftVersion: number;
  rightVersion: number;
}

/** Binary max-heap of merge candidates: highest score first, then the leftmost (run.c's strict `>` scan). */
class PairHeap {
  private readonly items: PairEntry[] = [];

  private static before(a: PairEntry, b: PairEntry): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }

  push(e: PairEntry): void {
    const h = this.items;
    h.push(e);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!PairHeap.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  pop(): PairEntry | undefined {
    const h = this.items;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < h.length && PairHeap.before(h[l], h[best])) best = l;
        if (r < h.length && PairHeap.before(h[r], h[best])) best = r;
        if (best === i) break;
        [h[i], h[best]] = [h[best], h[i]];
        i = best;
      }
    }
    return top;
  }
}

function binaryString(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}
