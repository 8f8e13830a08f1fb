// One training step of the predictors (forward, weighted BCE, batch gradients as matvecs on the kernels,
// Adam) against a float64 re-derivation of the same step: catches a transposed or mis-strided gradient.
import { beforeAll, expect, it } from "vitest";
import { Kernels, trainPredictors } from "@flashllm/sdk/internal";
import { mulberry32 } from "../src/testing/index.js";

let K: Kernels;
beforeAll(async () => {
  K = await Kernels.load();
});

it.each([1, 2, 3])("one Adam step equals the float64 reference's (seed %i)", (seed) => {
  const dim = 8, hidden = 12, rank = 4, n = 40, lr = 3e-3;
  const rand = mulberry32(seed);
  const x = Float32Array.from({ length: n * dim }, () => rand() * 2 - 1);
  const w = Array.from({ length: hidden * dim }, () => rand() * 2 - 1);
  const active = new Uint8Array(n * hidden);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < hidden; i++) {
      let s = 0.3; // a bias so that classes are unbalanced
      for (let j = 0; j < dim; j++) s += w[i * dim + j] * x[p * dim + j];
      active[p * hidden + i] = s > 0.8 ? 1 : 0;
    }
  }
  // 20% validation → 32 training positions = one batch of 32: one step, whatever the shuffle.
  const nTrain = 32;
  const { predictor } = trainPredictors(K, [{ x, active, n }], dim, hidden, { rank, epochs: 1, batchSize: 32, learningRate: lr, lookahead: false });
  const got = predictor.layers[0];

  // The trainer's start (its seeded LCG, seed 1), re-drawn.
  let s = 1;
  const rnd = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 4294967296) * 2 - 1;
  const a0 = Float64Array.from(Float32Array.from({ length: rank * dim }, () => rnd() / Math.sqrt(dim)));
  const b0 = Float64Array.from(Float32Array.from({ length: hidden * rank }, () => rnd() / Math.sqrt(rank)));
  let pos = 0;
  for (let i = 0; i < nTrain * hidden; i++) pos += active[i];
  const wPos = (nTrain * hidden - pos) / pos;
  const ga = new Float64Array(rank * dim), gb = new Float64Array(hidden * rank), gc = new Float64Array(hidden);
  for (let p = 0; p < nTrain; p++) {
    const xp = Array.from(x.subarray(p * dim, (p + 1) * dim));
    const pre = Array.from({ length: rank }, (_, r) => xp.reduce((t, v, j) => t + a0[r * dim + j] * v, 0));
    const z = pre.map((v) => Math.max(0, v));
    const g = Array.from({ length: hidden }, (_, i) => {
      const si = z.reduce((t, v, r) => t + b0[i * rank + r] * v, 0);
      const sig = 1 / (1 + Math.exp(-si));
      return active[p * hidden + i] ? wPos * (sig - 1) : sig;
    });
    for (let i = 0; i < hidden; i++) {
      gc[i] += g[i];
      for (let r = 0; r < rank; r++) gb[i * rank + r] += g[i] * z[r];
    }
    for (let r = 0; r < rank; r++) {
      if (pre[r] <= 0) continue;
      const gz = g.reduce((t, v, i) => t + v * b0[i * rank + r], 0);
      for (let j = 0; j < dim; j++) ga[r * dim + j] += gz * xp[j];
    }
  }
  // Adam's first step: m̂ = g, v̂ = g², so each weight moves by lr·g/(|g| + 1e-8).
  let compared = 0;
  const check = (after: Float32Array, before: Float64Array, grad: Float64Array) => {
    for (let q = 0; q < grad.length; q++) {
      const gq = grad[q] / nTrain;
      if (Math.abs(gq) < 1e-4) continue; // the step's size is ill-conditioned near 0
      expect(after[q]).toBeCloseTo(before[q] - (lr * gq) / (Math.abs(gq) + 1e-8), 5);
      compared++;
    }
  };
  check(got.a, a0, ga);
  check(got.b, b0, gb);
  check(got.c, new Float64Array(hidden), gc);
  expect(compared).toBeGreaterThan(0.8 * (rank * dim + hidden * rank + hidden));
});
