import { FlashError } from "../errors.js";
import type { Kernels } from "../kernels/loader.js";
import type { Predictor, PredictorLayer } from "./predictor.js";

/** What calibration recorded for one layer: FFN inputs and which neurons were truly active. */
export interface LayerActivations {
  /** `[n][dim]` FFN inputs. */
  x: Float32Array;
  /** `[n][hidden]` 1 where the neuron was active, else 0. */
  active: Uint8Array;
  /** Positions recorded. */
  n: number;
}

/** Options of {@link trainPredictors}. */
export interface TrainOptions {
  /** Rank per layer (a number for all layers). Default {@link defaultRank}. */
  rank?: number | number[];
  /** Passes over the training positions. Default 6. */
  epochs?: number;
  /** Adam learning rate. Default 3e-3. */
  learningRate?: number;
  batchSize?: number;
  /** Share of truly active neurons each layer must keep on text calibration never saw. Default 0.95. */
  recallTarget?: number;
  /**
   * The thresholds are chosen for `recallTarget + recallMargin` on the validation split, so that
   * text calibration never saw still reaches `recallTarget`. Default 0.01 (measured gap with 16,000
   * positions: ≤ 0.005; with 8,000 it was 0.01-0.03: docs/sparsity.md).
   */
  recallMargin?: number;
  /** Share of positions held out to choose thresholds and report recall/precision. Default 0.2. */
  validationShare?: number;
  seed?: number;
  /**
   * Also train a lookahead per layer but the last: a predictor of layer l+1's active neurons from layer
   * l's FFN input, which the flash path's prefetch reads ahead with. Default true.
   */
  lookahead?: boolean;
  /**
   * Share of the next layer's truly active neurons the lookahead's thresholds keep on the validation
   * split. Lower than `recallTarget`: a neuron it misses is read on demand, one it names needlessly is
   * read for nothing. Default 0.9.
   */
  lookaheadRecall?: number;
  /** Rank of the lookahead predictors (a number for all, or per source layer). Default: the layers' ranks. */
  lookaheadRank?: number | number[];
  /** Called after each layer and epoch (lookahead layers are numbered after the last layer). */
  onProgress?: (layer: number, epoch: number, loss: number) => void;
}

/**
 * The predictors' rank when none is given: `max(64, dim/4)`, at most `hidden`. A quarter of the width is
 * the paper's ratio at 7B scale; on the small models here (dim 64-128) rank 64 is what reaches ≥ 85%
 * skipped at recall 0.95 on unseen text (32 and 48 do not: docs/sparsity.md).
 */
export function defaultRank(dim: number, hidden: number): number {
  return Math.min(hidden, Math.max(64, Math.round(dim / 4)));
}

/** Recall and precision of one layer's predictor on validation positions. */
export interface PredictorQuality {
  recall: number;
  precision: number;
  /** Mean neurons predicted active and truly active per position. */
  predicted: number;
  truth: number;
}

/**
 * Trains the low-rank predictors (ARCHITECTURE.md §4): per layer `score = B·relu(A·x) + c`, with a balanced
 * binary cross-entropy (positives weighted by negatives/positives: active neurons are rare and a miss
 * costs quality while a false alarm only costs I/O), Adam, and a threshold per layer chosen on held-out
 * positions to reach the target recall plus a margin; then, unless `lookahead: false`, one lookahead per
 * layer but the last (layer l+1's activity from layer l's inputs). The matrix-vector products run on the
 * WASM kernels.
 */
export function trainPredictors(k: Kernels, layers: LayerActivations[], dim: number, hidden: number, opts: TrainOptions = {}): { predictor: Predictor; quality: PredictorQuality[]; lookaheadQuality?: PredictorQuality[] } {
  const recallTarget = opts.recallTarget ?? 0.95;
  const chosenAt = Math.min(1, recallTarget + (opts.recallMargin ?? 0.01));
  const rankOf = (r: number | number[] | undefined, l: number) => (Array.isArray(r) ? r[l] : r);
  const fit = (data: LayerActivations, rank: number, progressLayer: number, target: number) => {
    const layer = trainLayer(k, data, dim, hidden, rank, opts, (epoch, loss) => opts.onProgress?.(progressLayer, epoch, loss));
    const nVal = Math.max(1, Math.floor(data.n * (opts.validationShare ?? 0.2)));
    layer.threshold = chooseThreshold(k, layer, data, dim, hidden, data.n - nVal, data.n, target);
    return { layer, quality: measure(k, layer, data, dim, hidden, data.n - nVal, data.n) };
  };
  const out: PredictorLayer[] = [];
  const quality: PredictorQuality[] = [];
  for (const [l, data] of layers.entries()) {
    const r = fit(data, rankOf(opts.rank, l) ?? defaultRank(dim, hidden), l, chosenAt);
    out.push(r.layer);
    quality.push(r.quality);
  }
  const predictor: Predictor = { dim, hiddenDim: hidden, layers: out, recallTarget };
  if (opts.lookahead === false || layers.length < 2) return { predictor, quality };
  // Lookahead l: layer l's inputs against layer l+1's activity at the same positions.
  const ahead: PredictorLayer[] = [];
  const aheadQuality: PredictorQuality[] = [];
  for (let l = 0; l + 1 < layers.length; l++) {
    const data: LayerActivations = { x: layers[l].x, active: layers[l + 1].active, n: Math.min(layers[l].n, layers[l + 1].n) };
    const r = fit(data, rankOf(opts.lookaheadRank, l) ?? out[l + 1].rank, layers.length + l, opts.lookaheadRecall ?? 0.9);
    ahead.push(r.layer);
    aheadQuality.push(r.quality);
  }
  predictor.lookahead = ahead;
  return { predictor, quality, lookaheadQuality: aheadQuality };
}

function trainLayer(k: Kernels, d: LayerActivations, dim: number, hidden: number, rank: number, o: TrainOptions, progress: (epoch: number, loss: number) => void): PredictorLayer {
  const nTrain = d.n - Math.max(1, Math.floor(d.n * (o.validationShare ?? 0.2)));
  if (nTrain < 1) throw new FlashError("BAD_ARGUMENT", "no positions to train on");
  let pos = 0;
  for (let i = 0; i < nTrain * hidden; i++) pos += d.active[i];
  // Balance: each class carries half the loss. A dead layer (no positives) keeps the weight at 1.
  const wPos = pos > 0 ? Math.min(1000, (nTrain * hidden - pos) / pos) : 1;
  let seed = (o.seed ?? 1) >>> 0 || 1;
  const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 4294967296) * 2 - 1;
  const a = Float32Array.from({ length: rank * dim }, () => rnd() / Math.sqrt(dim));
  const b = Float32Array.from({ length: hidden * rank }, () => rnd() / Math.sqrt(rank));
  const c = new Float32Array(hidden);
  const params = [a, b, c];
  const grads = params.map((p) => new Float32Array(p.length));
  const m1 = params.map((p) => new Float32Array(p.length));
  const m2 = params.map((p) => new Float32Array(p.length));
  const [ga, gb, gc] = grads;
  // WASM buffers for the products: A and B are copied in after each step. The gradients of A and B
  // are sums of outer products over the batch, computed as matvecs on the kernels from batch-major
  // buffers: `∂B[:,r] = Gᵀ·z_r` (G the batch's dLoss/ds, [hidden][batch]) and `∂A[r,:] = Xᵀ·gz_r`.
  const batch = o.batchSize ?? 32;
  const A = k.alloc(a.length * 4), B = k.alloc(b.length * 4), X = k.alloc(dim * 4), Z = k.alloc(rank * 4), S = k.alloc(hidden * 4), GZ = k.alloc(rank * 4);
  const XB = k.alloc(batch * dim * 4), GT = k.alloc(hidden * batch * 4), ZT = k.alloc(rank * batch * 4), GZT = k.alloc(rank * batch * 4);
  const GBT = k.alloc(rank * hidden * 4), GA = k.alloc(rank * dim * 4);
  const lr = o.learningRate ?? 3e-3;
  const epochs = o.epochs ?? 6;
  const order = Array.from({ length: nTrain }, (_, i) => i);
  let step = 0;
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(((rnd() + 1) / 2) * (i + 1)) % (i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      let lossSum = 0;
      for (let start = 0; start < nTrain; start += batch) {
        const end = Math.min(nTrain, start + batch);
        const bs = end - start;
        k.f32(A.ptr, a.length).set(a);
        k.f32(B.ptr, b.length).set(b);
        gc.fill(0);
        const xb = k.f32(XB.ptr, bs * dim), gt = k.f32(GT.ptr, hidden * bs), zt = k.f32(ZT.ptr, rank * bs), gzt = k.f32(GZT.ptr, rank * bs);
        const xw = k.f32(X.ptr, dim), zw = k.f32(Z.ptr, rank), sw = k.f32(S.ptr, hidden), gzw = k.f32(GZ.ptr, rank);
        for (let q = 0; q < bs; q++) {
          const p = order[start + q];
          const x = d.x.subarray(p * dim, (p + 1) * dim);
          xw.set(x);
          xb.set(x, q * dim);
          k.k.matvec_f32(Z.ptr, A.ptr, X.ptr, rank, dim);
          for (let r = 0; r < rank; r++) zt[r * bs + q] = zw[r] > 0 ? zw[r] : 0; // relu(A·x), batch-major
          k.k.relu(Z.ptr, rank);
          k.k.matvec_f32(S.ptr, B.ptr, Z.ptr, hidden, rank);
          const y = d.active.subarray(p * hidden, (p + 1) * hidden);
          // dLoss/ds for the weighted BCE; reuse s's buffer for it.
          for (let i = 0; i < hidden; i++) {
            const si = sw[i] + c[i];
            const sig = 1 / (1 + Math.exp(-si));
            let g: number;
            if (y[i]) {
              lossSum += wPos * softplus(-si);
              g = wPos * (sig - 1);
            } else {
              lossSum += softplus(si);
              g = sig;
            }
            sw[i] = g;
            gt[i * bs + q] = g;
            gc[i] += g;
          }
          k.k.matvec_t_f32(GZ.ptr, B.ptr, S.ptr, hidden, rank); // Bᵀ·g, through relu's derivative
          for (let r = 0; r < rank; r++) gzt[r * bs + q] = zt[r * bs + q] > 0 ? gzw[r] : 0;
        }
        for (let r = 0; r < rank; r++) {
          k.k.matvec_f32(GBT.ptr + r * hidden * 4, GT.ptr, ZT.ptr + r * bs * 4, hidden, bs);
          k.k.matvec_t_f32(GA.ptr + r * dim * 4, XB.ptr, GZT.ptr + r * bs * 4, bs, dim);
        }
        ga.set(k.f32(GA.ptr, rank * dim));
        const gbt = k.f32(GBT.ptr, rank * hidden);
        for (let i = 0; i < hidden; i++) for (let r = 0; r < rank; r++) gb[i * rank + r] = gbt[r * hidden + i];
        step++;
        adam(params, grads, m1, m2, lr, step, 1 / bs);
      }
      progress(epoch, lossSum / (nTrain * hidden));
    }
  } finally {
    for (const blk of [A, B, X, Z, S, GZ, XB, GT, ZT, GZT, GBT, GA]) k.free(blk);
  }
  // Fold c into the stored bias; threshold is chosen afterwards.
  return { rank, a, b, c, threshold: 0 };
}

function softplus(v: number): number {
  return v > 20 ? v : Math.log1p(Math.exp(v));
}

function adam(params: Float32Array[], grads: Float32Array[], m1: Float32Array[], m2: Float32Array[], lr: number, t: number, scale: number): void {
  const b1 = 0.9, b2 = 0.999, eps = 1e-8;
  const c1 = 1 - b1 ** t, c2 = 1 - b2 ** t;
  for (let q = 0; q < params.length; q++) {
    const p = params[q], g = grads[q], m = m1[q], v = m2[q];
    for (let i = 0; i < p.length; i++) {
      const gi = g[i] * scale;
      m[i] = b1 * m[i] + (1 - b1) * gi;
      v[i] = b2 * v[i] + (1 - b2) * gi * gi;
      p[i] -= (lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + eps);
    }
  }
}

/** Scores of positions `from…to-1` of a layer under a predictor layer, with a callback per position. */
function eachScore(k: Kernels, p: PredictorLayer, d: LayerActivations, dim: number, hidden: number, from: number, to: number, f: (s: Float32Array, y: Uint8Array) => void): void {
  const A = k.allocF32(p.a), B = k.allocF32(p.b), X = k.alloc(dim * 4), Z = k.alloc(p.rank * 4), S = k.alloc(hidden * 4);
  try {
    for (let q = from; q < to; q++) {
      k.f32(X.ptr, dim).set(d.x.subarray(q * dim, (q + 1) * dim));
      k.k.matvec_f32(Z.ptr, A.ptr, X.ptr, p.rank, dim);
      k.k.relu(Z.ptr, p.rank);
      k.k.matvec_f32(S.ptr, B.ptr, Z.ptr, hidden, p.rank);
      const s = k.f32(S.ptr, hidden);
      for (let i = 0; i < hidden; i++) s[i] += p.c[i];
      f(s, d.active.subarray(q * hidden, (q + 1) * hidden));
    }
  } finally {
    for (const blk of [A, B, X, Z, S]) k.free(blk);
  }
}

/** The largest threshold whose recall on positions `from…to-1` reaches `target`. */
function chooseThreshold(k: Kernels, p: PredictorLayer, d: LayerActivations, dim: number, hidden: number, from: number, to: number, target: number): number {
  const pos: number[] = [];
  eachScore(k, p, d, dim, hidden, from, to, (s, y) => {
    for (let i = 0; i < hidden; i++) if (y[i]) pos.push(s[i]);
  });
  if (pos.length === 0) return 1e30; // never active on these positions: predict nothing
  pos.sort((u, v) => u - v);
  const miss = Math.floor((1 - target) * pos.length);
  return pos[miss] - 1e-6;
}

/** Recall and precision of a predictor layer on positions `from…to-1`. */
export function measure(k: Kernels, p: PredictorLayer, d: LayerActivations, dim: number, hidden: number, from: number, to: number): PredictorQuality {
  let tp = 0, fp = 0, fn = 0;
  eachScore(k, p, d, dim, hidden, from, to, (s, y) => {
    for (let i = 0; i < hidden; i++) {
      const pred = s[i] > p.threshold;
      if (pred && y[i]) tp++;
      else if (pred) fp++;
      else if (y[i]) fn++;
    }
  });
  const n = Math.max(1, to - from);
  return { recall: tp + fn > 0 ? tp / (tp + fn) : 1, precision: tp + fp > 0 ? tp / (tp + fp) : 1, predicted: (tp + fp) / n, truth: (tp + fn) / n };
}
