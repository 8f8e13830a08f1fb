// Every WASM export against an independent scalar TypeScript reference on fresh random inputs, with
// sizes that are not multiples of the SIMD width, and guard regions around every output buffer.
import { beforeAll, describe, expect, it } from "vitest";
import { Kernels } from "../src/kernels/loader.js";
import { rng } from "../../../test/helpers.js";

let K: Kernels;
beforeAll(async () => {
  K = await Kernels.load();
});

const SIZES = [1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 64, 100, 172];
const GUARD = 16; // floats of sentinel on each side of an output
const SENTINEL = 0x7fc0dead; // a NaN bit pattern no kernel produces

/** A buffer of n floats in WASM memory with sentinel guards around it, freed by the returned dispose. */
class Buf {
  readonly base: number;
  readonly ptr: number;
  constructor(readonly n: number, fill?: () => number) {
    this.base = K.alloc((n + 2 * GUARD) * 4).ptr;
    this.ptr = this.base + GUARD * 4;
    const all = new Uint32Array(K.k.memory.buffer, this.base, n + 2 * GUARD);
    all.fill(SENTINEL);
    if (fill) {
      const v = this.view();
      for (let i = 0; i < n; i++) v[i] = fill();
    }
  }
  view(): Float32Array {
    return K.f32(this.ptr, this.n);
  }
  set(data: ArrayLike<number>) {
    this.view().set(data);
  }
  guardsIntact(): boolean {
    const all = new Uint32Array(K.k.memory.buffer, this.base, this.n + 2 * GUARD);
    for (let i = 0; i < GUARD; i++) if (all[i] !== SENTINEL || all[this.n + GUARD + i] !== SENTINEL) return false;
    return true;
  }
  free() {
    K.free(this.base);
  }
}

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, rel = 1e-5, abs = 1e-5) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = abs + rel * Math.abs(expected[i]);
    if (!(Math.abs(actual[i] - expected[i]) <= tol)) throw new Error(`index ${i}: got ${actual[i]}, expected ${expected[i]} (tol ${tol})`);
  }
}

// --- independent scalar references (float64 accumulation) ---
const refMatvec = (w: Float32Array, x: Float32Array, rows: number, cols: number) =>
  Array.from({ length: rows }, (_, i) => {
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[i * cols + j] * x[j];
    return s;
  });
const refMatvecT = (w: Float32Array, x: Float32Array, rows: number, cols: number) =>
  Array.from({ length: cols }, (_, c) => {
    let s = 0;
    for (let r = 0; r < rows; r++) s += w[r * cols + c] * x[r];
    return s;
  });
const silu = (v: number) => v / (1 + Math.exp(-v));
const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
const relu = (v: number) => (v > 0 ? v : 0);

describe("WASM kernels vs scalar TypeScript references", () => {
  it("matvec_f32, matvec_f32_scalar and matvec_t_f32 on many shapes", () => {
    const r = rng(1);
    for (const rows of [1, 5, 17, 64]) {
      for (const cols of SIZES) {
        const w = new Buf(rows * cols, () => r() * 2 - 1);
        const x = new Buf(cols, () => r() * 2 - 1);
        const xt = new Buf(rows, () => r() * 2 - 1);
        const out = new Buf(rows);
        const outT = new Buf(cols);
        const W = w.view().slice();
        const expected = refMatvec(W, x.view().slice(), rows, cols);
        K.k.matvec_f32(out.ptr, w.ptr, x.ptr, rows, cols);
        close(out.view(), expected);
        expect(out.guardsIntact()).toBe(true);
        K.k.matvec_f32_scalar(out.ptr, w.ptr, x.ptr, rows, cols);
        close(out.view(), expected);
        K.k.matvec_t_f32(outT.ptr, w.ptr, xt.ptr, rows, cols);
        close(outT.view(), refMatvecT(W, xt.view().slice(), rows, cols));
        expect(outT.guardsIntact()).toBe(true);
        [w, x, xt, out, outT].forEach((b) => b.free());
      }
    }
  });

  it("matvec_q8 matches the dequantized product within the activation quantization error", () => {
    const r = rng(2);
    // 19×8192 and 9×11008 take the 8-rows-per-pass loop (rows from 8192 columns): each row must equal
    // the same row computed alone, bit for bit (integer sums are exact)
    for (const [rows, cols] of [[3, 7], [17, 33], [64, 172], [8, 1000], [2, 3000], [19, 8192], [9, 11008]]) {
      const q = new Int8Array(rows * cols).map(() => Math.round(r() * 254) - 127);
      const scales = Float32Array.from({ length: rows }, () => 0.001 + r() * 0.02);
      const wb = K.alloc(rows * cols);
      K.i8(wb.ptr, rows * cols).set(q);
      const sb = new Buf(rows);
      sb.set(scales);
      const x = new Buf(cols, () => r() * 4 - 2);
      const xq = K.alloc((cols + 8) * 2);
      const out = new Buf(rows);
      K.k.matvec_q8(out.ptr, wb.ptr, sb.ptr, x.ptr, xq.ptr, rows, cols);
      const X = x.view();
      const xmax = X.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (let i = 0; i < rows; i++) {
        let s = 0;
        let bound = 0;
        for (let j = 0; j < cols; j++) {
          s += q[i * cols + j] * scales[i] * X[j];
          bound += Math.abs(q[i * cols + j] * scales[i]) * (xmax / 32767) * 0.5;
        }
        expect(Math.abs(out.view()[i] - s)).toBeLessThanOrEqual(bound * 1.01 + 1e-5);
        if (cols >= 8192) {
          const one = new Buf(1);
          K.k.matvec_q8(one.ptr, wb.ptr + i * cols, sb.ptr + 4 * i, x.ptr, xq.ptr, 1, cols);
          expect(one.view()[0], `row ${i} alone`).toBe(out.view()[i]);
          one.free();
        }
      }
      expect(out.guardsIntact()).toBe(true);
      K.free(wb);
      K.free(xq);
      [sb, x, out].forEach((b) => b.free());
    }
  });

  it("rmsnorm and layernorm", () => {
    const r = rng(3);
    for (const n of SIZES) {
      const x = new Buf(n, () => r() * 6 - 3);
      const w = new Buf(n, () => r() * 2);
      const b = new Buf(n, () => r() - 0.5);
      const out = new Buf(n);
      const X = x.view().slice();
      const W = w.view().slice();
      const B = b.view().slice();
      K.k.rmsnorm(out.ptr, x.ptr, w.ptr, n, 1e-5);
      const ss = X.reduce((s, v) => s + v * v, 0) / n + 1e-5;
      close(out.view(), Array.from(X, (v, i) => (W[i] * v) / Math.sqrt(ss)), 1e-5, 1e-6);
      expect(out.guardsIntact()).toBe(true);
      K.k.layernorm(out.ptr, x.ptr, w.ptr, b.ptr, n, 1e-5);
      const mean = X.reduce((s, v) => s + v, 0) / n;
      const v = X.reduce((s, u) => s + (u - mean) ** 2, 0) / n;
      close(out.view(), Array.from(X, (u, i) => ((u - mean) / Math.sqrt(v + 1e-5)) * W[i] + B[i]), 1e-4, 1e-4);
      expect(out.guardsIntact()).toBe(true);
      [x, w, b, out].forEach((q) => q.free());
    }
  });

  it("activations, softmax, mul, add, argmax (in place and out of place)", () => {
    const r = rng(4);
    for (const n of SIZES) {
      for (const [name, f] of [["silu", silu], ["relu", relu], ["gelu", gelu]] as const) {
        const x = new Buf(n, () => r() * 20 - 10);
        const X = x.view().slice();
        K.k[name](x.ptr, n);
        close(x.view(), Array.from(X, f), 1e-5, 1e-6);
        expect(x.guardsIntact()).toBe(true);
        x.free();
      }
      const s = new Buf(n, () => r() * 30 - 15);
      const S = s.view().slice();
      K.k.softmax(s.ptr, n);
      const m = Math.max(...S);
      const z = S.reduce((a, v) => a + Math.exp(v - m), 0);
      close(s.view(), Array.from(S, (v) => Math.exp(v - m) / z), 1e-5, 1e-7);
      expect(s.guardsIntact()).toBe(true);
      const a = new Buf(n, () => r() - 0.5);
      const b = new Buf(n, () => r() - 0.5);
      const o = new Buf(n);
      const A = a.view().slice();
      const B = b.view().slice();
      K.k.mul(o.ptr, a.ptr, b.ptr, n);
      close(o.view(), Array.from(A, (v, i) => Math.fround(v * B[i])), 0, 0);
      K.k.add(o.ptr, a.ptr, b.ptr, n);
      close(o.view(), Array.from(A, (v, i) => Math.fround(v + B[i])), 0, 0);
      K.k.add(a.ptr, a.ptr, b.ptr, n); // in place
      close(a.view(), Array.from(A, (v, i) => Math.fround(v + B[i])), 0, 0);
      expect(o.guardsIntact() && a.guardsIntact()).toBe(true);
      const arg = new Buf(n, () => r());
      const V = arg.view();
      const j = Math.floor(r() * n);
      V[j] = 2;
      if (n > 1) V[(j + 1) % n] = 2; // ties: the first index wins
      expect(K.k.argmax(arg.ptr, n)).toBe(n > 1 ? Math.min(j, (j + 1) % n) : j);
      [s, a, b, o, arg].forEach((q) => q.free());
    }
  });

  it("rope, both pairings", () => {
    const r = rng(5);
    for (const [nHeads, hs] of [[1, 2], [3, 8], [8, 16], [2, 6]]) {
      for (const neox of [0, 1]) {
        const n = nHeads * hs;
        const v = new Buf(n, () => r() * 2 - 1);
        const cos = new Buf(hs / 2, () => r() * 2 - 1);
        const sin = new Buf(hs / 2, () => r() * 2 - 1);
        const V = v.view().slice();
        const C = cos.view().slice();
        const S = sin.view().slice();
        K.k.rope(v.ptr, nHeads, hs, cos.ptr, sin.ptr, neox);
        const exp = Array.from(V);
        for (let h = 0; h < nHeads; h++) {
          for (let j = 0; j < hs / 2; j++) {
            const [a, b] = neox ? [h * hs + j, h * hs + j + hs / 2] : [h * hs + 2 * j, h * hs + 2 * j + 1];
            exp[a] = V[a] * C[j] - V[b] * S[j];
            exp[b] = V[a] * S[j] + V[b] * C[j];
          }
        }
        close(v.view(), exp, 1e-6, 1e-6);
        expect(v.guardsIntact()).toBe(true);
        [v, cos, sin].forEach((q) => q.free());
      }
    }
  });

  it("attention with grouped-query heads over a KV cache", () => {
    const r = rng(6);
    for (const [nHeads, nKv, hs, pos] of [[8, 4, 8, 0], [8, 4, 8, 37], [4, 4, 16, 5], [6, 2, 3, 20], [2, 1, 17, 9]]) {
      const kvStride = nKv * hs;
      const T = pos + 1;
      const q = new Buf(nHeads * hs, () => r() * 2 - 1);
      const kc = new Buf(T * kvStride, () => r() * 2 - 1);
      const vc = new Buf(T * kvStride, () => r() * 2 - 1);
      const att = new Buf(nHeads * T);
      const out = new Buf(nHeads * hs);
      K.k.attention(out.ptr, q.ptr, kc.ptr, vc.ptr, att.ptr, pos, nHeads, nKv, hs, kvStride);
      const Q = q.view(), KC = kc.view(), VC = vc.view();
      const exp: number[] = [];
      for (let h = 0; h < nHeads; h++) {
        const kvh = Math.floor(h / (nHeads / nKv));
        const sc = Array.from({ length: T }, (_, t) => {
          let s = 0;
          for (let i = 0; i < hs; i++) s += Q[h * hs + i] * KC[t * kvStride + kvh * hs + i];
          return s / Math.sqrt(hs);
        });
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let i = 0; i < hs; i++) exp.push(e.reduce((acc, w, t) => acc + (w / z) * VC[t * kvStride + kvh * hs + i], 0));
      }
      close(out.view(), exp, 1e-5, 1e-6);
      expect(out.guardsIntact() && att.guardsIntact()).toBe(true);
      [q, kc, vc, att, out].forEach((b) => b.free());
    }
  });

  it("allocator: aligned, non-overlapping blocks; freeing everything returns heap use to where it was", () => {
    const r = rng(7);
    const start = K.heapUsed;
    const live: { ptr: number; size: number }[] = [];
    for (let step = 0; step < 2000; step++) {
      if (live.length && r() < 0.45) {
        const i = Math.floor(r() * live.length);
        K.free(live[i].ptr);
        live.splice(i, 1);
      } else {
        const size = 1 + Math.floor(r() ** 3 * 70000);
        const align = [16, 64, 4096][Math.floor(r() * 3)];
        const { ptr } = K.alloc(size, align);
        expect(ptr % align).toBe(0);
        for (const b of live) expect(ptr + size <= b.ptr || b.ptr + b.size <= ptr).toBe(true);
        live.push({ ptr, size });
      }
    }
    for (const b of live) K.free(b.ptr);
    expect(K.heapUsed).toBe(start);
  });
});

describe("crc32", () => {
  it("equals the JS CRC-32 on random buffers of many lengths and offsets, and chains", async () => {
    const { crc32 } = await import("../src/format/crc32.js");
    const r = rng(400);
    const data = Uint8Array.from({ length: 70000 }, () => Math.floor(r() * 256));
    const b = K.alloc(data.length + 16);
    K.u8(b.ptr, data.length).set(data);
    expect(K.k.crc32(b.ptr, 0, 0) >>> 0).toBe(0);
    K.u8(b.ptr, 9).set(new TextEncoder().encode("123456789"));
    expect(K.k.crc32(b.ptr, 9, 0) >>> 0).toBe(0xcbf43926);
    K.u8(b.ptr, 9).set(data.subarray(0, 9));
    for (const len of [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 100, 1000, 4096, 4097, 65536, 69990]) {
      const off = Math.floor(r() * 8);
      const bytes = data.subarray(off, off + len);
      const want = crc32(bytes);
      expect(K.k.crc32(b.ptr + off, len, 0) >>> 0, `len ${len}`).toBe(want);
      const cut = Math.floor(r() * len);
      const first = K.k.crc32(b.ptr + off, cut, 0) >>> 0;
      expect(K.k.crc32(b.ptr + off + cut, len - cut, first) >>> 0, `len ${len} cut ${cut}`).toBe(want);
      expect(crc32(bytes.subarray(cut), first)).toBe(want);
    }
    K.free(b);
  });
});
