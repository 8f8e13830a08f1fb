// The GGUF module: half-precision conversion, dequantizers against blocks packed by hand in this file
// (the packing written as ggml's quantizers do it, the expected values from the logical quants), the
// quantizers' error bounds, the reader on files with every metadata type, and typed errors on bad files.
import { describe, expect, it } from "vitest";
import {
  FormatError, GgmlType, GgufValueType, GgufWriter, MemorySink, MemorySource, dequantize, f16ToF32, f32ToF16, kv, openGguf, quantize, ggufTokenizer, HfTokenizer, Llama2cTokenizer,
  type GgufKv,
} from "@flashllm/sdk/internal";
import { rng } from "./helpers.js";

const h16 = (x: number) => f32ToF16(x);
const putHalf = (b: Uint8Array, at: number, x: number) => {
  const h = h16(x);
  b[at] = h & 0xff;
  b[at + 1] = h >> 8;
};

describe("half precision", () => {
  it("encodes known bit patterns, rounding to nearest even", () => {
    const cases: [number, number][] = [
      [1, 0x3c00], [0.5, 0x3800], [-2, 0xc000], [65504, 0x7bff], [70000, 0x7c00], [-Infinity, 0xfc00], [0, 0], [-0, 0x8000],
      [2 ** -24, 0x0001], [2 ** -25, 0], [3 * 2 ** -25, 0x0002], [2 ** -14, 0x0400],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -10, 0x3c01], [65520, 0x7c00],
    ];
    for (const [x, bits] of cases) expect(h16(x), String(x)).toBe(bits);
    expect(h16(NaN) & 0x7c00).toBe(0x7c00);
    expect(h16(NaN) & 0x3ff).not.toBe(0);
  });
  it("every finite half survives f16 → f32 → f16, and f32 → f16 picks the nearest half", () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00) continue;
      expect(h16(f16ToF32(h))).toBe(h);
    }
    const r = rng(5);
    for (let i = 0; i < 2000; i++) {
      const x = (r() - 0.5) * 2 ** Math.floor(r() * 30 - 15);
      const y = f16ToF32(h16(x));
      // Nearest: no neighbouring half is closer.
      for (const n of [h16(x) - 1, h16(x) + 1]) if ((n & 0x7c00) !== 0x7c00 && n >= 0 && n < 65536 && Math.sign(f16ToF32(n)) === Math.sign(y)) expect(Math.abs(f16ToF32(n) - x)).toBeGreaterThanOrEqual(Math.abs(y - x));
    }
  });
});

describe("dequantizers", () => {
  const r = rng(11);
  const int = (n: number) => Math.floor(r() * n);

  it("Q8_0: d·q per block of 32", () => {
    const blocks = 3;
    const b = new Uint8Array(34 * blocks);
    const want: number[] = [];
    for (let k = 0; k < blocks; k++) {
      const d = [0.5, -0.125, 3][k];
      putHalf(b, 34 * k, d);
      for (let j = 0; j < 32; j++) {
        const q = int(256) - 128;
        b[34 * k + 2 + j] = q & 0xff;
        want.push(d * q);
      }
    }
    const out = new Float32Array(96);
    dequantize(GgmlType.Q8_0, b, 96, out);
    expect(Array.from(out)).toEqual(want);
  });

  it("Q4_0 and Q4_1: low nibbles are values 0-15, high nibbles 16-31", () => {
    const q = Array.from({ length: 32 }, () => int(16));
    const b0 = new Uint8Array(18);
    const b1 = new Uint8Array(20);
    putHalf(b0, 0, 0.25);
    putHalf(b1, 0, 0.25);
    putHalf(b1, 2, -1.5);
    for (let j = 0; j < 16; j++) {
      b0[2 + j] = q[j] | (q[j + 16] << 4);
      b1[4 + j] = q[j] | (q[j + 16] << 4);
    }
    const o0 = new Float32Array(32);
    const o1 = new Float32Array(32);
    dequantize(GgmlType.Q4_0, b0, 32, o0);
    dequantize(GgmlType.Q4_1, b1, 32, o1);
    expect(Array.from(o0)).toEqual(q.map((v) => 0.25 * (v - 8)));
    expect(Array.from(o1)).toEqual(q.map((v) => 0.25 * v - 1.5));
  });

  it("Q5_0 (PowerInfer's predictor type): low nibbles and the qh bits make values 0-31, offset by 16", () => {
    const q = Array.from({ length: 64 }, () => int(32));
    const b = new Uint8Array(44);
    for (let k = 0; k < 2; k++) {
      const p = 22 * k;
      putHalf(b, p, k === 0 ? 0.125 : -0.5);
      let qh = 0;
      for (let j = 0; j < 32; j++) if (q[32 * k + j] & 16) qh += 2 ** j;
      new DataView(b.buffer).setUint32(p + 2, qh, true);
      for (let j = 0; j < 16; j++) b[p + 6 + j] = (q[32 * k + j] & 15) | ((q[32 * k + j + 16] & 15) << 4);
    }
    const out = new Float32Array(64);
    dequantize(GgmlType.Q5_0, b, 64, out);
    expect(Array.from(out)).toEqual(q.map((v, i) => (i < 32 ? 0.125 : -0.5) * (v - 16)));
  });

  it("Q4_K: 8 sub-blocks with 6-bit scales and mins packed in 12 bytes", () => {
    const d = 0.0625, dmin = 0.5;
    const sc = Array.from({ length: 8 }, () => int(64));
    const mn = Array.from({ length: 8 }, () => int(64));
    const q = Array.from({ length: 256 }, () => int(16));
    const b = new Uint8Array(144);
    putHalf(b, 0, d);
    putHalf(b, 2, dmin);
    // Packing as quantize_row_q4_K_ref writes it.
    for (let j = 0; j < 8; j++) {
      if (j < 4) {
        b[4 + j] = sc[j];
        b[4 + j + 4] = mn[j];
      } else {
        b[4 + j + 4] = (sc[j] & 0xf) | ((mn[j] & 0xf) << 4);
        b[4 + j - 4] |= (sc[j] >> 4) << 6;
        b[4 + j] |= (mn[j] >> 4) << 6;
      }
    }
    // Values 64c…64c+31 are the low nibbles of qs[32c…], 64c+32… the high nibbles.
    for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[16 + 32 * c + l] = q[64 * c + l] | (q[64 * c + 32 + l] << 4);
    const out = new Float32Array(256);
    dequantize(GgmlType.Q4_K, b, 256, out);
    const want = q.map((v, i) => Math.fround(Math.fround(d * sc[i >> 5]) * v) - Math.fround(dmin * mn[i >> 5]));
    for (let i = 0; i < 256; i++) expect(out[i], `value ${i}`).toBeCloseTo(want[i], 5);
  });

  it("Q6_K: 6-bit quants split in ql/qh, one int8 scale per 16 values", () => {
    const d = 0.03125;
    const L = Array.from({ length: 256 }, () => int(64));
    const scales = Array.from({ length: 16 }, () => int(256) - 128);
    const b = new Uint8Array(210);
    // Packing as quantize_row_q6_K_ref writes it.
    for (let j = 0, ql = 0, qh = 128; j < 256; j += 128, ql += 64, qh += 32) {
      for (let l = 0; l < 32; l++) {
        b[ql + l] = (L[j + l] & 0xf) | ((L[j + l + 64] & 0xf) << 4);
        b[ql + l + 32] = (L[j + l + 32] & 0xf) | ((L[j + l + 96] & 0xf) << 4);
        b[qh + l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
      }
    }
    scales.forEach((s, i) => (b[192 + i] = s & 0xff));
    putHalf(b, 208, d);
    const out = new Float32Array(256);
    dequantize(GgmlType.Q6_K, b, 256, out);
    for (let i = 0; i < 256; i++) expect(out[i], `value ${i}`).toBeCloseTo(d * scales[i >> 4] * (L[i] - 32), 6);
  });

  it("F16 and BF16 widen exactly", () => {
    const b = new Uint8Array([0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x40, 0xc0]);
    const f16 = new Float32Array(4);
    dequantize(GgmlType.F16, b, 4, f16);
    expect(Array.from(f16.subarray(0, 2))).toEqual([1, -2]);
    const bf = new Float32Array(4);
    dequantize(GgmlType.BF16, b, 4, bf);
    expect(bf[2]).toBe(1); // 0x3f80
    expect(bf[3]).toBe(-3); // 0xc040
  });

  it("refuses partial blocks and unknown types with typed errors", () => {
    expect(() => dequantize(GgmlType.Q8_0, new Uint8Array(34), 31, new Float32Array(31))).toThrow(/whole Q8_0 blocks/);
    expect(() => dequantize(GgmlType.Q8_0, new Uint8Array(33), 32, new Float32Array(32))).toThrow(/need 34 bytes/);
    expect(() => dequantize(11, new Uint8Array(110), 256, new Float32Array(256))).toThrow(/cannot dequantize ggml type Q3_K/);
  });
});

describe("quantizers (ggml reference rules)", () => {
  const r = rng(3);
  const x = Float32Array.from({ length: 32 * 20 }, (_, i) => (r() - 0.5) * (i % 64 < 32 ? 4 : 0.01));
  it("Q8_0: d = max|x|/127 (as f16), |x − d·q| ≤ d/2 + f16 rounding", () => {
    const out = new Float32Array(x.length);
    dequantize(GgmlType.Q8_0, quantize(GgmlType.Q8_0, x), x.length, out);
    for (let k = 0; k < 20; k++) {
      const blk = x.subarray(32 * k, 32 * k + 32);
      const d = Math.max(...Array.from(blk, Math.abs)) / 127;
      for (let j = 0; j < 32; j++) expect(Math.abs(blk[j] - out[32 * k + j])).toBeLessThanOrEqual(d / 2 + Math.abs(blk[j]) * 2 ** -10);
    }
  });
  it("Q4_0: the value of largest magnitude maps to −8·d exactly; others within |d|", () => {
    const out = new Float32Array(x.length);
    dequantize(GgmlType.Q4_0, quantize(GgmlType.Q4_0, x), x.length, out);
    for (let k = 0; k < 20; k++) {
      const blk = Array.from(x.subarray(32 * k, 32 * k + 32));
      const iMax = blk.reduce((best, v, i) => (Math.abs(v) > Math.abs(blk[best]) ? i : best), 0);
      const d = f16ToF32(f32ToF16(blk[iMax] / -8));
      expect(out[32 * k + iMax]).toBeCloseTo(-8 * d, 6);
      for (let j = 0; j < 32; j++) expect(Math.abs(blk[j] - out[32 * k + j])).toBeLessThanOrEqual(Math.abs(d) * 1.001);
    }
  });
});

/** Every metadata value type, for round trips. */
const ALL_TYPES: GgufKv[] = [
  { key: "t.u8", type: GgufValueType.UINT8, value: 200 },
  { key: "t.i8", type: GgufValueType.INT8, value: -100 },
  { key: "t.u16", type: GgufValueType.UINT16, value: 60000 },
  { key: "t.i16", type: GgufValueType.INT16, value: -30000 },
  { key: "t.u32", type: GgufValueType.UINT32, value: 4e9 },
  { key: "t.i32", type: GgufValueType.INT32, value: -2e9 },
  { key: "t.f32", type: GgufValueType.FLOAT32, value: 0.5 },
  { key: "t.bool", type: GgufValueType.BOOL, value: true },
  { key: "t.str", type: GgufValueType.STRING, value: "héllo ▁world" },
  { key: "t.u64", type: GgufValueType.UINT64, value: 2n ** 60n },
  { key: "t.i64", type: GgufValueType.INT64, value: -5 },
  { key: "t.f64", type: GgufValueType.FLOAT64, value: Math.PI },
  { key: "t.strs", type: GgufValueType.ARRAY, arrayType: GgufValueType.STRING, value: ["a", "", "▁b"] },
  { key: "t.nested", type: GgufValueType.ARRAY, arrayType: GgufValueType.ARRAY, value: [[1, 2], [3]] as never },
];

async function writeGguf(meta: GgufKv[], tensors: { name: string; dims: number[]; type: number; data: Float32Array }[], alignment?: number): Promise<Uint8Array> {
  const sink = new MemorySink();
  const w = new GgufWriter(sink, meta, tensors, alignment);
  for (const t of tensors) await w.write(t.name, t.data);
  await w.finish();
  return sink.bytes();
}

describe("reader", () => {
  it("reads every metadata type, tensor infos, alignment and tensor data", async () => {
    // The nested array's elements need their own type: write it by hand below instead of through kv.
    const meta = ALL_TYPES.filter((m) => m.key !== "t.nested");
    const a = Float32Array.from({ length: 64 }, (_, i) => i - 30);
    const b = Float32Array.from({ length: 3 }, (_, i) => i / 4);
    const bytes = await writeGguf(meta, [
      { name: "a", dims: [32, 2], type: GgmlType.Q8_0, data: a },
      { name: "b", dims: [3], type: GgmlType.F32, data: b },
    ], 64);
    const f = await openGguf(new MemorySource(bytes));
    expect(f.version).toBe(3);
    expect(f.alignment).toBe(64);
    for (const m of meta) {
      expect(f.metadata.get(m.key)?.type, m.key).toBe(m.type);
      if (m.type === GgufValueType.FLOAT32) expect(f.get(m.key)).toBeCloseTo(m.value as number);
      else expect(f.get(m.key), m.key).toEqual(m.value);
    }
    expect(f.tensors.map((t) => [t.name, t.dims, t.typeName, t.byteLength])).toEqual([["a", [32, 2], "Q8_0", 68], ["b", [3], "F32", 12]]);
    expect(f.dataOffset % 64).toBe(0);
    expect(f.tensors[1].offset % 64).toBe(0);
    const aq = await f.readF32("a");
    for (let i = 0; i < 64; i++) expect(Math.abs(aq[i] - a[i])).toBeLessThan(0.13);
    expect(Array.from(await f.readF32("b"))).toEqual(Array.from(b));
  });

  it("reads version 2 files (same layout) and sniffs the magic", async () => {
    const bytes = await writeGguf([kv.str("general.name", "x")], []);
    bytes[4] = 2;
    const f = await openGguf(new MemorySource(bytes));
    expect(f.version).toBe(2);
    expect(f.get("general.name")).toBe("x");
  });

  const base = async () => writeGguf([kv.strs("t.s", ["ab", "cd"]), kv.u32("general.alignment", 32)], [{ name: "w", dims: [32], type: GgmlType.F32, data: new Float32Array(32) }]);
  const code = async (bytes: Uint8Array) => {
    try {
      await openGguf(new MemorySource(bytes));
      return "ok";
    } catch (e) {
      expect(e).toBeInstanceOf(FormatError);
      return `${(e as FormatError).code}: ${(e as Error).message}`;
    }
  };
  const setU64 = (b: Uint8Array, at: number, v: bigint) => new DataView(b.buffer).setBigUint64(at, v, true);
  const find = (b: Uint8Array, s: string) => Buffer.from(b).indexOf(s);

  it("names what is wrong with a bad file", async () => {
    const ok = await base();
    expect(await code(ok)).toBe("ok");
    const mut = (f: (b: Uint8Array) => void) => {
      const b = ok.slice();
      f(b);
      return b;
    };
    expect(await code(mut((b) => (b[0] = 0x48)))).toMatch(/^BAD_MAGIC/);
    expect(await code(mut((b) => (b[4] = 1)))).toMatch(/^BAD_VERSION.*v1/);
    expect(await code(mut((b) => new DataView(b.buffer).setUint32(4, 0x03000000, true)))).toMatch(/^BAD_VERSION.*big-endian/);
    expect(await code(ok.slice(0, 20))).toMatch(/^TRUNCATED/);
    expect(await code(ok.slice(0, ok.length - 4))).toMatch(/^TRUNCATED.*tensor "w"/);
    expect(await code(mut((b) => setU64(b, 8, 1n << 40n)))).toMatch(/^BAD_HEADER.*tensor_count/);
    // Array length far beyond the file: refused before allocating.
    const arr = find(ok, "t.s") + 3 + 4 + 4;
    expect(await code(mut((b) => setU64(b, arr, 1n << 23n)))).toMatch(/^TRUNCATED.*array of 8388608/);
    expect(await code(mut((b) => setU64(b, arr, 1n << 40n)))).toMatch(/^BAD_HEADER.*exceeds/);
    // String length past the end of the file.
    expect(await code(mut((b) => setU64(b, arr + 8, 1n << 22n)))).toMatch(/^(TRUNCATED|BAD_HEADER)/);
    // Unknown value type.
    expect(await code(mut((b) => new DataView(b.buffer).setUint32(find(ok, "t.s") + 3, 77, true)))).toMatch(/^BAD_HEADER.*value type 77/);
    // Alignment not a power of two.
    expect(await code(mut((b) => new DataView(b.buffer).setUint32(find(ok, "general.alignment") + 17 + 4, 48, true)))).toMatch(/^BAD_HEADER.*alignment 48/);
    // Tensor: dims, type, offset.
    const w = find(ok, "w\x01\x00\x00\x00") + 1; // after the name: n_dims u32
    expect(await code(mut((b) => new DataView(b.buffer).setUint32(w, 9, true)))).toMatch(/^BAD_HEADER.*9 dimensions/);
    expect(await code(mut((b) => setU64(b, w + 4, 0n)))).toMatch(/^BAD_HEADER.*dimension 0 is 0/);
    expect(await code(mut((b) => new DataView(b.buffer).setUint32(w + 12, 99, true)))).toMatch(/^UNSUPPORTED.*type 99/);
    expect(await code(mut((b) => new DataView(b.buffer).setUint32(w + 12, GgmlType.Q4_K, true)))).toMatch(/^BAD_HEADER.*rows of 32 are not whole Q4_K blocks of 256/);
    expect(await code(mut((b) => setU64(b, w + 16, 8n)))).toMatch(/^BAD_HEADER.*not a multiple of the alignment/);
    expect(await code(mut((b) => setU64(b, w + 16, 1n << 40n)))).toMatch(/^TRUNCATED/);
  });

  it("refuses overlapping tensors and duplicate keys", async () => {
    const two = await writeGguf([], [
      { name: "p", dims: [32], type: GgmlType.F32, data: new Float32Array(32) },
      { name: "q", dims: [32], type: GgmlType.F32, data: new Float32Array(32) },
    ]);
    const q = Buffer.from(two).indexOf("q\x01\x00\x00\x00") + 1;
    const b = two.slice();
    new DataView(b.buffer).setBigUint64(q + 16, 32n, true); // q starts inside p
    await expect(openGguf(new MemorySource(b))).rejects.toThrow(/overlap/);
    const dup = await writeGguf([kv.u32("k.a", 1), kv.u32("k.b", 2)], []);
    const d = dup.slice();
    d[Buffer.from(d).indexOf("k.b") + 2] = "a".charCodeAt(0);
    await expect(openGguf(new MemorySource(d))).rejects.toThrow(/appears twice/);
  });
});

describe("tokenizer from metadata", () => {
  it('"gpt2": byte-level BPE with merges through tokenizer.json', async () => {
    // GPT-2's byte-to-unicode map sends space to Ġ; a tiny vocabulary over "hello world".
    const tokens = ["<|bos|>", "<|eos|>", "h", "e", "l", "o", "w", "r", "d", "Ġ", "he", "ll", "llo", "hello", "Ġw", "or", "Ġwor", "ld", "Ġworld"];
    const merges = ["h e", "l l", "ll o", "he llo", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"];
    const bytes = await writeGguf([
      kv.str("tokenizer.ggml.model", "gpt2"),
      kv.str("tokenizer.ggml.pre", "default"),
      kv.strs("tokenizer.ggml.tokens", tokens),
      kv.strs("tokenizer.ggml.merges", merges),
      kv.i32s("tokenizer.ggml.token_type", tokens.map((_, i) => (i < 2 ? 3 : 1))),
      kv.u32("tokenizer.ggml.bos_token_id", 0),
      kv.u32("tokenizer.ggml.eos_token_id", 1),
      kv.bool("tokenizer.ggml.add_bos_token", true),
    ], []);
    const t = ggufTokenizer(await openGguf(new MemorySource(bytes)), tokens.length);
    expect(t.file.kind).toBe("hf");
    const tok = HfTokenizer.parse(t.file.bytes, tokens.length);
    expect(tok.encode("hello world")).toEqual([0, 13, 18]);
    expect(tok.defaultStopTokens).toEqual([1]);
    expect(new TextDecoder().decode(tok.pieceBytes(13, 18))).toBe(" world");
  });

  it('"llama": SentencePiece pieces become a llama2.c tokenizer (▁ → space, byte pieces kept)', async () => {
    const tokens = ["<unk>", "<s>", "</s>", ...Array.from({ length: 256 }, (_, i) => `<0x${i.toString(16).toUpperCase().padStart(2, "0")}>`), "▁", "a", "b", "▁a", "▁ab"];
    const types = tokens.map((_, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
    const scores = tokens.map((_, i) => (i < 259 ? 0 : -(i - 259)));
    scores[263] = 5; // "▁ab" merges first
    const bytes = await writeGguf([
      kv.str("tokenizer.ggml.model", "llama"),
      kv.strs("tokenizer.ggml.tokens", tokens),
      kv.f32s("tokenizer.ggml.scores", scores),
      kv.i32s("tokenizer.ggml.token_type", types),
      kv.u32("tokenizer.ggml.bos_token_id", 1),
      kv.u32("tokenizer.ggml.eos_token_id", 2),
    ], []);
    const t = ggufTokenizer(await openGguf(new MemorySource(bytes)), tokens.length);
    const tok = Llama2cTokenizer.parse(t.file.bytes, tokens.length);
    expect(tok.encode("ab é")).toEqual([1, 263, 259, 0xc3 + 3, 0xa9 + 3]);
    expect(tok.decode([1, 263, 259, 0xc3 + 3, 0xa9 + 3])).toBe("ab é");
    // A vocabulary whose BOS is not 1 cannot run through run.c's tokenizer: named, not mis-encoded.
    const other = await writeGguf([kv.str("tokenizer.ggml.model", "llama"), kv.strs("tokenizer.ggml.tokens", tokens), kv.u32("tokenizer.ggml.bos_token_id", 5)], []);
    const otherFile = await openGguf(new MemorySource(other));
    expect(() => ggufTokenizer(otherFile, tokens.length)).toThrow(/BOS 5 and EOS undefined; flashllm's llama tokenizer needs BOS 1/);
  });
});
