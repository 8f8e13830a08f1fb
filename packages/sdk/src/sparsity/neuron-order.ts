import { FlashError } from "../errors.js";
import { BUNDLE_CRC_BYTES } from "../format/constants.js";
import { crc32, crcToHex } from "../format/crc32.js";
import type { FlmFile } from "../format/reader.js";
import type { Predictor, PredictorLayer } from "./predictor.js";

/**
 * Co-activation order of a layer's neurons on storage (issue 12, item 3). An FFN is invariant to a
 * permutation of its neurons, so calibration may store them in any order; storing neurons that fire
 * together next to each other turns a token's missing neurons into fewer, longer runs, which the read
 * planner (cache/read-planner.ts) issues as fewer, larger reads. Nothing is looked up at run time: the
 * bundles, the predictor's rows and the per-bundle CRC table are all written in the new order.
 *
 * An order is `order[position] = old neuron index`: the bundle stored at `position` in the new file is
 * the one that was at `order[position]`.
 *
 * The method (chosen by measurement on held-out text, docs/sparsity.md "Co-activation order"; it beat
 * sorting by frequency and a spectral order): greedy chaining on the co-activation counts. Start from
 * the most often active neuron; repeatedly append the unplaced neuron most similar to the last placed
 * one, similarity being the cosine of the two neurons' activity over the recorded positions,
 * `C[i][j] / sqrt(f_i · f_j)` (C: positions where both fire, f: positions where each fires); when
 * nothing is similar, the most frequent unplaced neuron. Then 2-opt passes raise Σ C over neighbours,
 * which is exactly the number of runs saved at gap 0. Neurons never seen active go last. Cost:
 * O(Σ_positions k² + passes·h²) time and h² counts of memory for a layer of h neurons with k active per
 * position: fine for the models calibrated here (h ≤ a few thousand; 11008 would need 484 MB).
 */

/** Placed neurons the next choice is compared with (1 measured as good as 3 at gap 0 and simpler). */
export const CHAIN_TAIL = 1;

/** 2-opt passes at most (each O(h²); the measured models settle in fewer). */
export const TWO_OPT_PASSES = 20;

/** Options of {@link coactivationOrder}. */
export interface CoactivationOrderOptions {
  /** Only the first `positions` rows of `active` are used. Default: all of them. */
  positions?: number;
  /** How many of the last placed neurons the next choice is compared with. Default {@link CHAIN_TAIL}. */
  tail?: number;
  /** Similarity of two neurons: co-activation count normalized by both frequencies (cosine), or the raw count. Default cosine. */
  similarity?: "cosine" | "count";
  /** Passes of 2-opt over the chain, maximizing the co-activation count of neighbours. Default {@link TWO_OPT_PASSES}. */
  improve?: number;
}

/**
 * The storage order of one layer's `hidden` neurons from its recorded activity `active` (`[n][hidden]`,
 * 1 = active): neurons that fire together end up next to each other. Deterministic.
 */
export function coactivationOrder(active: Uint8Array, hidden: number, options: CoactivationOrderOptions = {}): Int32Array {
  if (!Number.isInteger(hidden) || hidden < 1) throw new FlashError("BAD_ARGUMENT", `hidden must be a positive integer, got ${hidden}`);
  if (active.length % hidden !== 0) throw new FlashError("WRONG_DIMS", `activity of ${active.length} entries is not a whole number of positions of ${hidden} neurons`);
  const n = Math.min(options.positions ?? active.length / hidden, active.length / hidden);
  const tail = Math.max(1, options.tail ?? CHAIN_TAIL);
  const { counts, freq } = coactivationCounts(active, hidden, n);
  const norm = new Float64Array(hidden);
  const cosine = (options.similarity ?? "cosine") === "cosine";
  for (let i = 0; i < hidden; i++) norm[i] = freq[i] > 0 ? (cosine ? 1 / Math.sqrt(freq[i]) : 1) : 0;

  const order = new Int32Array(hidden);
  const placed = new Uint8Array(hidden);
  // Neurons by falling frequency (index breaks ties): the start, and the fallback when nothing is similar.
  const byFreq = Array.from({ length: hidden }, (_, i) => i).sort((a, b) => freq[b] - freq[a] || a - b);
  const live = byFreq.filter((i) => freq[i] > 0);
  let placedCount = 0;
  let fallback = 0;
  const score = new Float64Array(hidden);
  while (placedCount < live.length) {
    let next = -1;
    if (placedCount > 0) {
      // Similarity to the last `tail` placed neurons, nearer ones weighing more.
      score.fill(0);
      for (let t = 0; t < tail && t < placedCount; t++) {
        const j = order[placedCount - 1 - t];
        const w = norm[j] / (t + 1);
        const row = j * hidden;
        for (let i = 0; i < hidden; i++) if (counts[row + i] !== 0) score[i] += counts[row + i] * norm[i] * w;
      }
      let best = 0;
      for (const i of live) if (!placed[i] && score[i] > best) { best = score[i]; next = i; }
    }
    if (next < 0) {
      while (placed[live[fallback]]) fallback++;
      next = live[fallback];
    }
    placed[next] = 1;
    order[placedCount++] = next;
  }
  const liveCount = placedCount;
  for (const i of byFreq) if (!placed[i]) order[placedCount++] = i; // never active: last, where no token reads them
  for (let pass = 0; pass < (options.improve ?? TWO_OPT_PASSES); pass++) if (!twoOptPass(order, liveCount, counts, hidden)) break;
  return order;
}

/**
 * One pass of 2-opt over `order[0…n)`: reverses a segment whenever that raises Σ C[a][b] over
 * neighbouring pairs (= positions minus runs at gap 0, summed over the recorded positions). Returns
 * whether anything changed.
 */
function twoOptPass(order: Int32Array, n: number, counts: Uint32Array, h: number): boolean {
  let changed = false;
  const w = (a: number, b: number) => counts[a * h + b];
  for (let i = 0; i < n - 1; i++) {
    for (let j = i + 1; j < n; j++) {
      // Reverse order[i+1…j]: edges (i,i+1) and (j,j+1) become (i,j) and (i+1,j+1).
      const a = order[i], b = order[i + 1], c = order[j];
      const before = w(a, b) + (j + 1 < n ? w(c, order[j + 1]) : 0);
      const after = w(a, c) + (j + 1 < n ? w(b, order[j + 1]) : 0);
      if (after > before) {
        order.subarray(i + 1, j + 1).reverse();
        changed = true;
      }
    }
  }
  return changed;
}

/** `counts[i·h + j]`: positions where neurons i and j were both active (i ≠ j); `freq[i]`: positions where i was. */
export function coactivationCounts(active: Uint8Array, hidden: number, n: number): { counts: Uint32Array; freq: Uint32Array } {
  const counts = new Uint32Array(hidden * hidden);
  const freq = new Uint32Array(hidden);
  const on = new Int32Array(hidden);
  for (let p = 0; p < n; p++) {
    const row = p * hidden;
    let k = 0;
    for (let i = 0; i < hidden; i++) if (active[row + i]) on[k++] = i;
    for (let a = 0; a < k; a++) {
      const i = on[a];
      freq[i]++;
      const base = i * hidden;
      for (let b = 0; b < k; b++) if (b !== a) counts[base + on[b]]++;
    }
  }
  return { counts, freq };
}

/** Throws WRONG_DIMS unless `order` holds each of 0…n-1 exactly once. */
export function checkPermutation(order: Int32Array, n: number, what = "neuron order"): void {
  if (order.length !== n) throw new FlashError("WRONG_DIMS", `${what} has ${order.length} entries, needs ${n}`, { length: order.length, needed: n });
  const seen = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const i = order[p];
    if (!Number.isInteger(i) || i < 0 || i >= n || seen[i]) {
      throw new FlashError("WRONG_DIMS", `${what} is not a permutation of 0…${n - 1}: position ${p} holds ${i}${i >= 0 && i < n && seen[i] ? ", which came earlier" : ""}`, { position: p, value: i });
    }
    seen[i] = 1;
  }
}

/** The inverse permutation: `inverse[old neuron] = its new position`. */
export function invertOrder(order: Int32Array): Int32Array {
  const inv = new Int32Array(order.length);
  for (let p = 0; p < order.length; p++) inv[order[p]] = p;
  return inv;
}

/** One layer's predictor with its per-neuron rows (B's rows, c) in storage order `order`; A and the threshold are per layer. */
export function permutePredictorLayer(p: PredictorLayer, order: Int32Array): PredictorLayer {
  const h = p.c.length;
  checkPermutation(order, h);
  const b = new Float32Array(p.b.length);
  const c = new Float32Array(h);
  for (let pos = 0; pos < h; pos++) {
    const old = order[pos];
    b.set(p.b.subarray(old * p.rank, (old + 1) * p.rank), pos * p.rank);
    c[pos] = p.c[old];
  }
  return { ...p, b, c };
}

/** Every layer's predictor in its layer's storage order. */
export function permutePredictor(predictor: Predictor, orders: readonly Int32Array[]): Predictor {
  if (orders.length !== predictor.layers.length) throw new FlashError("WRONG_DIMS", `${orders.length} neuron orders for a predictor of ${predictor.layers.length} layers`);
  const layers = predictor.layers.map((p, l) => permutePredictorLayer(p, orders[l]));
  // The trained lookahead's entry l names layer l+1's neurons (its rows follow layer l+1's order; its
  // input, layer l's FFN input, is not permuted).
  const lookahead = predictor.lookahead?.map((p, l) => permutePredictorLayer(p, orders[l + 1]));
  return { ...predictor, layers, ...(lookahead ? { lookahead } : {}) };
}

/**
 * The ffn.crc section's bytes for bundles stored in `orders` (layer-major, little-endian u32 per
 * bundle), from the table of the current order (`table[l·h + i]`, as FlmFile.loadBundleCrcs gives it).
 */
export function permutedCrcSection(table: Uint32Array, hidden: number, orders: readonly Int32Array[]): Uint8Array {
  if (table.length !== orders.length * hidden) throw new FlashError("WRONG_DIMS", `bundle CRC table of ${table.length} entries does not match ${orders.length} layers of ${hidden} neurons`);
  const bytes = new Uint8Array(table.length * BUNDLE_CRC_BYTES);
  const view = new DataView(bytes.buffer);
  orders.forEach((order, l) => {
    checkPermutation(order, hidden, `layer ${l}'s neuron order`);
    for (let pos = 0; pos < hidden; pos++) view.setUint32((l * hidden + pos) * BUNDLE_CRC_BYTES, table[l * hidden + order[pos]], true);
  });
  return bytes;
}

/**
 * How a layer's active sets fall on storage in `order`: mean runs per position, a run being neurons
 * consecutive in storage with gaps of at most `gap` inactive neurons (what the read planner merges),
 * and the neurons read per position including those gaps. The offline figure the method was chosen by.
 */
export function storageRuns(active: Uint8Array, hidden: number, order: Int32Array, gap = 0, positions?: number): { runs: number; read: number; active: number } {
  const n = positions ?? active.length / hidden;
  let runs = 0;
  let read = 0;
  let on = 0;
  for (let p = 0; p < n; p++) {
    const row = p * hidden;
    let last = -Infinity;
    for (let pos = 0; pos < hidden; pos++) {
      if (!active[row + order[pos]]) continue;
      on++;
      if (pos - last - 1 > gap) { runs++; read++; }
      else read += pos - last;
      last = pos;
    }
  }
  return { runs: runs / Math.max(n, 1), read: read / Math.max(n, 1), active: on / Math.max(n, 1) };
}

/** What {@link storedInOrder} gives the writer: the predictor in storage order and the fingerprint of the permuted FFN. */
export interface StoredOrder {
  predictor: Predictor;
  /** CRC-32 (hex) of the ffn.crc section the permuted file will hold: the predictors' `modelFingerprint`. */
  fingerprint: string;
  /** Per layer: `order[position]` = the current file's neuron stored there. */
  orders: readonly Int32Array[];
}

/**
 * Prepares writing `file`'s FFN in `orders` (one per layer): the predictor's rows permuted alike and
 * the model fingerprint of the permuted file, computed up front from the verified bundle CRC table
 * (the writer declares the fingerprint in the manifest before it writes the bundles).
 */
export async function storedInOrder(file: Pick<FlmFile, "manifest" | "loadBundleCrcs">, predictor: Predictor, orders: readonly Int32Array[], signal?: AbortSignal): Promise<StoredOrder> {
  const { nLayers, hiddenDim } = file.manifest.config;
  if (orders.length !== nLayers) throw new FlashError("WRONG_DIMS", `${orders.length} neuron orders for a model of ${nLayers} layers`);
  const table = await file.loadBundleCrcs({ signal });
  const section = permutedCrcSection(table, hiddenDim, orders);
  return { predictor: permutePredictor(predictor, orders), fingerprint: crcToHex(crc32(section)), orders };
}
