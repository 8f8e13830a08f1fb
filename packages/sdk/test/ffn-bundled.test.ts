// The sparse FFN kernel over neuron bundles (crates/kernels/ABI.md) against a scalar TypeScript
// reference, and its promised bit-identity with the dense kernels when every neuron is given in order.
import { beforeAll, describe, expect, it } from "vitest";
import { Kernels } from "../src/kernels/loader.js";
import { rng } from "../../../test/helpers.js";

let K: Kernels;
beforeAll(async () => {
  K = await Kernels.load();
});

/** fatrelu's threshold in these tests: inside the range of the gate values, so both sides are hit. */
const T = 0.2;
const relu = (v: number) => (v > 0 ? v : 0);
// by ABI code: relu, silu, gelu, fatrelu (threshold T), drelu (relu on the gate; on up too, below)
const act = [relu, (v: number) => v / (1 + Math.exp(-v)), (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))), (v: number) => (v > T ? v : 0), relu];
/** A gated neuron's h: act(g)·u, or relu(g)·relu(u) for dReLU (code 4). */
const gatedH = (a: number, g: number, u: number) => (a === 4 ? relu(g) * relu(u) : act[a](g) * u);

interface Neuron { gate: Float32Array; up: Float32Array; down: Float32Array; bias: number }

/** Writes bundles per the ABI: header [sg, su, sd, bias], then gate?, up, down; f32 or i8 values. */
function writeBundles(neurons: Neuron[], dim: number, dtype: 0 | 1, gated: boolean) {
  const vecs = gated ? 3 : 2;
  const bytes = 16 + vecs * dim * (dtype === 0 ? 4 : 1);
  const stride = Math.ceil(bytes / 16) * 16;
  const block = K.alloc(stride * neurons.length + 64, 64);
  const dq: Neuron[] = []; // the values the kernel will see (dequantized for q8)
  neurons.forEach((n, i) => {
    const base = block.ptr + i * stride;
    const vs = gated ? [n.gate, n.up, n.down] : [n.up, n.down];
    const header = K.f32(base, 4);
    const seen: Float32Array[] = [];
    if (dtype === 0) {
      header.set([1, 1, 1, n.bias]);
      vs.forEach((v, j) => K.f32(base + 16 + j * dim * 4, dim).set(v));
      seen.push(...vs);
    } else {
      const scales = vs.map((v) => Math.max(...Array.from(v, Math.abs)) / 127 || 1);
      header.set(gated ? [scales[0], scales[1], scales[2], n.bias] : [0, scales[0], scales[1], n.bias]);
      vs.forEach((v, j) => {
        const q = K.i8(base + 16 + j * dim, dim);
        for (let c = 0; c < dim; c++) q[c] = Math.round(v[c] / scales[j]);
        seen.push(Float32Array.from(q, (x) => x * Math.fround(scales[j])));
      });
    }
    dq.push(gated ? { gate: seen[0], up: seen[1], down: seen[2], bias: n.bias } : { gate: new Float32Array(0), up: seen[0], down: seen[1], bias: n.bias });
  });
  return { block, stride, dq };
}

function randomNeurons(r: () => number, count: number, dim: number): Neuron[] {
  const v = () => Float32Array.from({ length: dim }, () => r() * 2 - 1);
  return Array.from({ length: count }, () => ({ gate: v(), up: v(), down: v(), bias: r() - 0.5 }));
}

describe("ffn_bundled", () => {
  for (const dtype of [0, 1] as const) {
    for (const gated of [true, false]) {
      it(`${dtype ? "q8" : "f32"} ${gated ? "gated" : "plain"}: matches the scalar reference on random slot subsets`, () => {
        const r = rng(10 + dtype * 2 + (gated ? 1 : 0));
        for (const dim of [1, 7, 16, 33, 64, 100]) {
          const count = 40;
          const neurons = randomNeurons(r, count, dim);
          const { block, stride, dq } = writeBundles(neurons, dim, dtype, gated);
          const x = Float32Array.from({ length: dim }, () => r() * 2 - 1);
          const xb = K.allocF32(x);
          const ids = Array.from({ length: count }, (_, i) => i).filter(() => r() < 0.4).sort(() => r() - 0.5);
          const idb = K.alloc(Math.max(ids.length, 1) * 4);
          K.u32(idb.ptr, ids.length).set(ids);
          const out = K.alloc((dim + 8) * 4);
          const guard = K.f32(out.ptr, dim + 8);
          guard.fill(12345);
          const hOut = K.alloc((ids.length + 1) * 4);
          const xq = K.alloc((dim + 8) * 2);
          for (const a of [0, 1, 2, 3, 4]) {
            K.k.ffn_bundled(out.ptr, xb.ptr, dim, block.ptr, stride, idb.ptr, ids.length, dtype, gated ? 1 : 0, a, xq.ptr, hOut.ptr, 0, T);
            const xmax = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
            const expected = new Array(dim).fill(0);
            const hs: number[] = [];
            for (const id of ids) {
              const n = dq[id];
              const dot = (w: Float32Array) => w.reduce((s, v, c) => s + v * x[c], 0);
              const u = dot(n.up) + n.bias;
              const h = gated ? gatedH(a, dot(n.gate), u) : act[a](u);
              hs.push(h);
              for (let c = 0; c < dim; c++) expected[c] += h * n.down[c];
            }
            // q8 quantizes x to i16 (error ≤ xmax/32767/2 per element): allow for it.
            const tol = dtype ? 1e-3 * (1 + xmax) * dim : 1e-4;
            const got = K.f32(out.ptr, dim + 8);
            for (let c = 0; c < dim; c++) expect(Math.abs(got[c] - expected[c])).toBeLessThanOrEqual(tol * (1 + Math.abs(expected[c])));
            for (let c = dim; c < dim + 8; c++) expect(got[c]).toBe(12345);
            const H = K.f32(hOut.ptr, ids.length);
            hs.forEach((h, k) => expect(Math.abs(H[k] - h)).toBeLessThanOrEqual(tol * (1 + Math.abs(h))));
          }
          [block, xb, idb, out, hOut, xq].forEach((b) => K.free(b));
        }
      });
    }
  }

  it("f32, all neurons in order: bit-identical to matvec_f32 + silu + mul + matvec_t_f32", () => {
    const r = rng(20);
    for (const [dim, hidden] of [[64, 172], [17, 33], [128, 352]]) {
      const neurons = randomNeurons(r, hidden, dim);
      const { block, stride } = writeBundles(neurons.map((n) => ({ ...n, bias: 0 })), dim, 0, true);
      const gate = K.allocF32(neurons.flatMap((n) => Array.from(n.gate)));
      const up = K.allocF32(neurons.flatMap((n) => Array.from(n.up)));
      const downT = K.allocF32(neurons.flatMap((n) => Array.from(n.down)));
      const x = K.allocF32(Array.from({ length: dim }, () => r() * 2 - 1));
      const hb = K.alloc(hidden * 4), hb2 = K.alloc(hidden * 4), dense = K.alloc(dim * 4), sparse = K.alloc(dim * 4);
      K.k.matvec_f32(hb.ptr, gate.ptr, x.ptr, hidden, dim);
      K.k.matvec_f32(hb2.ptr, up.ptr, x.ptr, hidden, dim);
      K.k.silu(hb.ptr, hidden);
      K.k.mul(hb.ptr, hb.ptr, hb2.ptr, hidden);
      K.k.matvec_t_f32(dense.ptr, downT.ptr, hb.ptr, hidden, dim);
      const ids = K.alloc(hidden * 4);
      K.u32(ids.ptr, hidden).set(Array.from({ length: hidden }, (_, i) => i));
      const xq = K.alloc((dim + 8) * 2);
      K.k.ffn_bundled(sparse.ptr, x.ptr, dim, block.ptr, stride, ids.ptr, hidden, 0, 1, 1, xq.ptr, 0, 0, 0);
      expect(Array.from(K.u32(sparse.ptr, dim))).toEqual(Array.from(K.u32(dense.ptr, dim)));
      [block, gate, up, downT, x, hb, hb2, dense, sparse, ids, xq].forEach((b) => K.free(b));
    }
  });
});
