// The heap-based merge of Llama2cTokenizer.encode against a line-by-line twin of run.c's O(n²) loop,
// on fresh random text (TinyStories snippets, random codepoints, repeated runs that tie scores).
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Llama2cTokenizer } from "../../src/tokenizer/llama2c.js";
import { mulberry32 } from "../../src/testing/index.js";

const root = fileURLToPath(new URL("../../../../", import.meta.url));
const tokBytes = new Uint8Array(readFileSync(`${root}packages/node-io/models/stories260K/tok512.bin`));
const tok = Llama2cTokenizer.parse(tokBytes, 512);
const corpus = readFileSync(`${root}test/data/tinystories_tail60k.txt`, "utf8");

/** run.c's encode, transcribed: rescan every adjacent pair per merge, first of equal best scores wins. */
function runcEncode(t: Llama2cTokenizer, text: string): number[] {
  const key = (bytes: Uint8Array) => String.fromCharCode(...bytes);
  const keys = t.pieces.map(key);
  const ids = new Map<string, number>();
  keys.forEach((k, i) => ids.has(k) || ids.set(k, i));
  const tokens = t.encode("", true, false); // BOS
  const utf8 = new TextEncoder().encode(text);
  if (utf8.length > 0) tokens.push(ids.get(" ")!);
  for (let i = 0; i < utf8.length; ) {
    let end = i + 1;
    while (end < utf8.length && (utf8[end] & 0xc0) === 0x80 && end - i < 4) end++;
    const id = ids.get(key(utf8.subarray(i, end)));
    if (id !== undefined) tokens.push(id);
    else for (let b = i; b < end; b++) tokens.push(utf8[b] + 3);
    i = end;
  }
  for (;;) {
    let best = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i + 1 < tokens.length; i++) {
      const id = ids.get(keys[tokens[i]] + keys[tokens[i + 1]]);
      if (id !== undefined && t.scores[id] > best) {
        best = t.scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx < 0) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

describe("Llama2cTokenizer.encode", () => {
  const seed = Date.now() >>> 0;
  const rand = mulberry32(seed);
  it(`equals run.c's merge loop on random text (seed ${seed})`, () => {
    const alphabet = ["a", "b", "e", " ", "the", "ll", "\n", "é", "日本", "🙂", "\u0000", "aaaa", "  "];
    for (let c = 0; c < 60; c++) {
      let text: string;
      if (c % 3 === 0) {
        const start = Math.floor(rand() * (corpus.length - 400));
        text = corpus.slice(start, start + Math.floor(rand() * 400));
      } else if (c % 3 === 1) {
        text = Array.from({ length: Math.floor(rand() * 120) }, () => alphabet[Math.floor(rand() * alphabet.length)]).join("");
      } else {
        text = String.fromCodePoint(...Array.from({ length: Math.floor(rand() * 60) }, () => 32 + Math.floor(rand() * 0x2000)));
      }
      expect(tok.encode(text, true, false), JSON.stringify(text)).toEqual(runcEncode(tok, text));
    }
  });

  it("encodes 100 KB of text (run.c's loop would take minutes)", () => {
    const text = corpus.slice(0, 100_000);
    const tokens = tok.encode(text, true, true);
    expect(tokens[0]).toBe(1);
    expect(tokens[tokens.length - 1]).toBe(2);
    // Decoding gives the text back, and merges happened all along it.
    expect(tok.decode(tokens.slice(0, -1))).toBe(text);
    expect(tokens.length).toBeLessThan(0.8 * text.length);
  });
});
