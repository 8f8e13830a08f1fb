// The f16, Q8_0 and Q4_0 kernels (crates/kernels/ABI.md, "Weight types") through the WASM build,
// against references written here from the definitions: IEEE half decoding, ggml's block layouts,
// llama.cpp's activation quantization, the documented summation order (with Math.fround), and float64.
import { beforeAll, describe, expect, it } from "vitest";
import { Kernels, KernelDtype, kernelRowBytes, xqScratchBytes } from "../src/kernels/loader.js";
import { rng } from "../../../test/helpers.js";

let K: Kernels;
beforeAll(async () => {
  K = await Kernels.load();
});
const f = Math.fround;

/** A half's value from its definition: (-1)^s·2^(e-15)·(1 + m/1024); subnormals 2^-14·m/1024. */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * (m / 1024) * 2 ** -14;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** The half nearest to v ≥ 0 (ties to even), by binary search over the ordered positive halves. */
function nearestHalf(v: number): number {
  let lo = 0, hi = 0x7c00; // [0, +inf]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (halfValue(mid) <= v) lo = mid; else hi = mid;
  }
  const dl = v - halfValue(lo), dh = halfValue(hi) - v;
  return dl < dh || (dl === dh && (lo & 1) === 0) ? lo : hi;
}

const roundHalfEven = (v: number) => {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** llama.cpp's x86 quantize_row_q8_0 for one block of 32: q and the f16-rounded d. */
function quantizeBlock(x: ArrayLike<number>, at: number): { q: number[]; d: number } {
  let amax = 0;
  for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[at + j]));
  const d = halfValue(nearestHalf(f(amax / 127)));
  const id = amax ? f(127 / amax) : 0;
  return { q: Array.from({ length: 32 }, (_, j) => roundHalfEven(f(x[at + j] * id))), d };
}

type BlockType = "q8_0" | "q4_0";
const BLOCK_BYTES = { q8_0: 34, q4_0: 18 };
/** Integer weight j of a block's quants (value = d·weight). */
const weightOf = (t: BlockType, qs: Uint8Array, j: number) =>
  t === "q8_0" ? (qs[j] << 24) >> 24 : j < 16 ? (qs[j] & 15) - 8 : (qs[j - 16] >> 4) - 8;

/** Random block rows: f16 scales like real weights (some zero or subnormal), uniform quants. */
function randomBlocks(r: () => number, t: BlockType, rows: number, cols: number): Uint8Array {
  const bytes = new Uint8Array(kernelRowBytes(t, cols) * rows);
  for (let b = 0; b < bytes.length; b += BLOCK_BYTES[t]) {
    const u = r();
    const d = u < 0.05 ? 0 : u < 0.1 ? Math.floor(r() * 1024) : nearestHalf(0.001 + 0.02 * r()) | (r() < 0.5 ? 0x8000 : 0);
    bytes[b] = d & 255;
    bytes[b + 1] = d >> 8;
    for (let i = 2; i < BLOCK_BYTES[t]; i++) bytes[b + i] = Math.floor(r() * 256);
  }
  return bytes;
}

/** Dequantized row i (float64 from the block definition). */
function dequant(t: BlockType, w: Uint8Array, cols: number, i: number): Float64Array {
  const out = new Float64Array(cols);
  const rb = kernelRowBytes(t, cols);
  for (let c = 0; c < cols; c++) {
    const b = i * rb + Math.floor(c / 32) * BLOCK_BYTES[t];
    out[c] = halfValue(w[b] | (w[b + 1] << 8)) * weightOf(t, w.subarray(b + 2), c % 32);
  }
  return out;
}

/** The documented order of one row's dot, in f32 arithmetic: one running sum over the blocks. */
function specDot(t: BlockType, w: Uint8Array, rowStart: number, x: Float32Array): number {
  let acc = 0;
  for (let b = 0; b < x.length / 32; b++) {
    const at = rowStart + b * BLOCK_BYTES[t];
    const { q, d } = quantizeBlock(x, 32 * b);
    let sum = 0;
    for (let j = 0; j < 32; j++) sum += weightOf(t, w.subarray(at + 2), j) * q[j];
    acc = f(acc + f(f(sum) * f(halfValue(w[at] | (w[at + 1] << 8)) * d)));
  }
  return acc;
}

/** Bound on |dot(w, x) − dot(w, dequantized quantized x)|: each x_j moves by ≤ d_x·(1/2 + 127/2048). */
function quantBound(w: Float64Array, x: Float32Array): number {
  let e = 0;
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0, sw = 0;
    for (let j = b; j < b + 32; j++) {
      amax = Math.max(amax, Math.abs(x[j]));
      sw += Math.abs(w[j]);
    }
    e += sw * (amax / 127) * 0.5625;
  }
  return e;
}

function copyIn(bytes: Uint8Array, offset = 0) {
  const b = K.alloc(bytes.length + offset + 16);
  K.u8(b.ptr + offset, bytes.length).set(bytes);
  return { block: b, ptr: b.ptr + offset };
}

describe("matvec_f16", () => {
  it("equals matvec_f32 over the decoded halves, bit for bit, at any alignment", () => {
    const r = rng(301);
    for (const [rows, cols] of [[1, 1], [3, 7], [5, 17], [7, 33], [9, 100], [4, 1000], [2, 4096]]) {
      const halves = new Uint16Array(rows * cols).map(() => {
        const u = r();
        return u < 0.1 ? Math.floor(r() * 0x10000) & 0x83ff : nearestHalf(2 * r()) | (r() < 0.5 ? 0x8000 : 0);
      });
      const w = copyIn(new Uint8Array(halves.buffer), 1); // odd address
      const wf = K.allocF32(Array.from(halves, halfValue));
      const x = K.allocF32(Array.from({ length: cols }, () => r() * 2 - 1));
      const out = K.alloc(rows * 4), ref = K.alloc(rows * 4);
      K.k.matvec_f16(out.ptr, w.ptr, x.ptr, rows, cols);
      K.k.matvec_f32(ref.ptr, wf.ptr, x.ptr, rows, cols);
      expect(Array.from(K.u32(out.ptr, rows))).toEqual(Array.from(K.u32(ref.ptr, rows)));
      const X = K.f32(x.ptr, cols), O = K.f32(out.ptr, rows);
      for (let i = 0; i < rows; i++) {
        let s = 0, a = 0;
        for (let j = 0; j < cols; j++) {
          s += halfValue(halves[i * cols + j]) * X[j];
          a += Math.abs(halfValue(halves[i * cols + j]) * X[j]);
        }
        expect(Math.abs(O[i] - s)).toBeLessThanOrEqual((cols + 2) * 2 ** -23 * a + 1e-30);
      }
      [w.block, wf, x, out, ref].forEach((b) => K.free(b));
    }
  });
});

for (const t of ["q8_0", "q4_0"] as const) {
  describe(`matvec_${t}`, () => {
    it("follows the documented order bit for bit and float64 within the activation quantization", () => {
      const r = rng(t === "q8_0" ? 302 : 303);
      // 8, 4 and single rows per pass; one case with an inf or NaN block scale (redone exactly)
      const shapes = [[1, 32], [3, 32], [4, 64], [5, 96], [7, 160], [9, 64], [17, 96], [6, 1056], [3, 4096], [2, 11008], [13, 128], [13, 128]];
      for (const [si, [rows, cols]] of shapes.entries()) {
        const bytes = randomBlocks(r, t, rows, cols);
        if (si >= shapes.length - 2) {
          const at = Math.floor(r() * rows) * kernelRowBytes(t, cols) + Math.floor(r() * (cols / 32)) * BLOCK_BYTES[t];
          const special = si === shapes.length - 2 ? 0x7c00 : 0x7e00;
          bytes[at] = special & 255;
          bytes[at + 1] = special >> 8;
        }
        const w = copyIn(bytes, 3);
        const xs = Float32Array.from({ length: cols }, () => (r() * 2 - 1) * (r() < 0.1 ? 100 : 1));
        const x = K.allocF32(xs);
        const xq = K.alloc(xqScratchBytes(cols) + 64);
        const guard = K.u8(xq.ptr, xqScratchBytes(cols) + 64);
        guard.fill(0xa5);
        const out = K.alloc(rows * 4);
        K.k[`matvec_${t}`](out.ptr, w.ptr, x.ptr, xq.ptr, rows, cols);
        expect(K.u8(xq.ptr + 2 * cols, 64).every((v) => v === 0xa5)).toBe(true); // scratch stays within 2·cols bytes
        const O = K.f32(out.ptr, rows);
        const rb = kernelRowBytes(t, cols);
        expect(O.some((v) => !Number.isFinite(v))).toBe(si >= shapes.length - 2);
        for (let i = 0; i < rows; i++) {
          const want = specDot(t, bytes, i * rb, xs);
          expect(O[i], `${rows}×${cols} row ${i}`).toBe(want);
          if (!Number.isFinite(want)) continue;
          const wd = dequant(t, bytes, cols, i);
          let s = 0, a = 0;
          for (let j = 0; j < cols; j++) {
            s += wd[j] * xs[j];
            a += Math.abs(wd[j] * xs[j]);
          }
          expect(Math.abs(O[i] - s)).toBeLessThanOrEqual(quantBound(wd, xs) + 1e-5 * a + 1e-30);
        }
        [w.block, x, xq, out].forEach((b) => K.free(b));
      }
    });
  });
}

describe("ffn_bundled with f16, q8_0 and q4_0 bundles", () => {
  for (const t of ["f16", "q8_0", "q4_0"] as const) {
    it(`${t}: h equals the matvec of the same rows, out the float64 sum; accumulate continues it`, () => {
      const r = rng(310 + KernelDtype[t]);
      for (const [dim, hidden] of [[32, 5], [64, 20], [288, 12]]) {
        for (const gated of [true, false]) {
          const nRows = gated ? 3 : 2;
          const rb = kernelRowBytes(t, dim);
          const bundleBytes = 16 + nRows * rb;
          const stride = bundleBytes + 5; // rows land at every alignment
          const rowsOf: Uint8Array[][] = [];
          const slots = K.alloc(stride * hidden + 16);
          const bias = Array.from({ length: hidden }, () => r() - 0.5);
          for (let i = 0; i < hidden; i++) {
            const rows = Array.from({ length: nRows }, () =>
              t === "f16"
                ? new Uint8Array(new Uint16Array(dim).map(() => nearestHalf(0.5 * r()) | (r() < 0.5 ? 0x8000 : 0)).buffer)
                : randomBlocks(r, t, 1, dim),
            );
            rowsOf.push(rows);
            const base = slots.ptr + i * stride;
            K.u8(base, 16).fill(0);
            new DataView(K.k.memory.buffer).setFloat32(base + 12, bias[i], true);
            rows.forEach((row, k) => K.u8(base + 16 + k * rb, rb).set(row));
          }
          const values = (row: Uint8Array) =>
            t === "f16" ? Float64Array.from(new Uint16Array(row.slice().buffer), halfValue) : dequant(t, row, dim, 0);
          const ids = Array.from({ length: hidden }, (_, i) => i).filter(() => r() < 0.7).sort(() => r() - 0.5);
          const idb = K.alloc(Math.max(ids.length, 1) * 4);
          K.u32(idb.ptr, ids.length).set(ids);
          const xs = Float32Array.from({ length: dim }, () => r() * 2 - 1);
          const x = K.allocF32(xs);
          const out = K.alloc(dim * 4), hOut = K.alloc((ids.length + 1) * 4), xq = K.alloc(xqScratchBytes(dim));
          const one = K.alloc(4), row = K.alloc(rb + 16);
          for (const act of [0, 1]) {
            K.k.ffn_bundled(out.ptr, x.ptr, dim, slots.ptr, stride, idb.ptr, ids.length, KernelDtype[t], gated ? 1 : 0, act, xq.ptr, hOut.ptr, 0, 0);
            const O = Array.from(K.f32(out.ptr, dim)), H = Array.from(K.f32(hOut.ptr, ids.length));
            const mv = (bytes: Uint8Array) => {
              K.u8(row.ptr, rb).set(bytes);
              if (t === "f16") K.k.matvec_f16(one.ptr, row.ptr, x.ptr, 1, dim);
              else K.k[`matvec_${t}`](one.ptr, row.ptr, x.ptr, xq.ptr, 1, dim);
              return K.f32(one.ptr, 1)[0];
            };
            const actF = act === 0 ? (v: number) => (v > 0 ? v : 0) : (v: number) => v / (1 + Math.exp(-v));
            const want = new Float64Array(dim), abs = new Float64Array(dim);
            ids.forEach((id, k) => {
              const rows = rowsOf[id];
              const up = rows[gated ? 1 : 0], down = rows[gated ? 2 : 1];
              const u = f(mv(up) + f(bias[id]));
              const h = gated ? f(f(actF(mv(rows[0]))) * u) : actF(u);
              // the kernel's own activation is an f32 approximation: compare h closely, then use the kernel's
              if (act === 0) expect(H[k]).toBe(h); // relu is exact: h is the matvecs' values, bit for bit
              else expect(Math.abs(H[k] - h)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(h)));
              const d = values(down);
              for (let c = 0; c < dim; c++) {
                want[c] += H[k] * d[c];
                abs[c] += Math.abs(H[k] * d[c]);
              }
            });
            for (let c = 0; c < dim; c++) expect(Math.abs(O[c] - want[c])).toBeLessThanOrEqual((ids.length + 2) * 2 ** -23 * abs[c] + 1e-30);
            // two chunks with accumulate = one pass, bit for bit
            const before = Array.from(K.u32(out.ptr, dim));
            const cut = ids.length >> 1;
            K.k.ffn_bundled(out.ptr, x.ptr, dim, slots.ptr, stride, idb.ptr, cut, KernelDtype[t], gated ? 1 : 0, act, xq.ptr, 0, 0, 0);
            K.k.ffn_bundled(out.ptr, x.ptr, dim, slots.ptr, stride, idb.ptr + 4 * cut, ids.length - cut, KernelDtype[t], gated ? 1 : 0, act, xq.ptr, 0, 1, 0);
            expect(Array.from(K.u32(out.ptr, dim))).toEqual(before);
          }
          [slots, idb, x, out, hOut, xq, one, row].forEach((b) => K.free(b));
        }
      }
    });
  }
});
