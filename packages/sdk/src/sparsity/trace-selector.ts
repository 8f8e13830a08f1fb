import { FlashError } from "../errors.js";
import { XorShift32 } from "../synth/random.js";
import type { NeuronSelector } from "./selector.js";

/**
 * Activation traces with stated statistics, for models whose weights are random (synthetic 7B
 * shapes): which neurons are active per token and layer is drawn, not computed, from three figures
 * that decide what windowing and bundling can save:
 * - `activeFraction`: neurons active per token in a layer;
 * - `overlap`: share of a token's active set that was active for the previous token (what the
 *   sliding window exploits);
 * - `skew`: Zipf exponent of neuron popularity (0 = every neuron equally likely; larger = a hot core
 *   of neurons that keeps coming back, which makes older window entries useful).
 * Each layer has its own random popularity order. Deterministic for a seed.
 */
export interface TraceParams {
  activeFraction: number;
  overlap: number;
  skew: number;
  /** PRNG seed. Default 1. */
  seed?: number;
  /**
   * Share of the next layer's active set that {@link TraceSelector.predictNext} names (a lookahead
   * predictor's recall; it names no false positives). Default 1.
   */
  lookaheadRecall?: number;
  /**
   * How clustered a token's newly drawn neurons are in storage order, in [0, 1): each new neuron after
   * the first is, with this probability, the one stored right after the previous new neuron (if that one
   * is not already in the set), else drawn by popularity as usual. Runs of new neurons then average
   * 1/(1 − coactivation) neurons. 0 (the default) draws every neuron independently: neurons stored in
   * no particular order, the behaviour before co-activation order existed. Fitted values: see presets.
   */
  coactivation?: number;
  /**
   * The first token selects every neuron of every layer (the trace is still drawn, so later tokens are
   * the same as without it): with a budget that holds the whole FFN, this fills the cache once and the
   * rest of the run reads nothing — the benchmarks' "all in memory" floor. Default false.
   */
  firstTokenAll?: boolean;
}

/** A named parameter set and where its figures come from. */
export interface TracePreset extends TraceParams {
  name: string;
  source: string;
}

/**
 * Presets. `opt-6.7b-paper`: LLM in a flash (Alizadeh et al. 2023) reports OPT-6.7B with ~10% of FFN
 * neurons active per token and ~2.4% of the FFN newly loaded per token with a window of 5 (their
 * Fig. 5b); overlap and skew are set so the trace reproduces both. `relu-tinystories`: the relufied
 * TinyStories models in shared/models (README §6-7, representative layers 2-4): ~8% active per
 * token, union over the last 2 / 4 / 8 tokens ~15% / ~26% / ~43%, top-10% neurons ~17% of
 * activations (this trace, 1000 tokens: 14.0% / 24.6% / 42%, top-10% 17%).
 *
 * `coactivation` (both presets): {@link CALIBRATED_COACTIVATION}, fitted to the relufied TinyStories
 * models stored in co-activation order by `flashllm calibrate` (docs/sparsity.md "Co-activation order"):
 * there, reordering made the runs a token's newly needed neurons (window 4) fall into 0.86x and 0.82x
 * as many on held-out text (mean 0.84x), and the engine's read requests 0.79-0.83x; 0.2 makes this
 * trace's runs per newly needed neuron 0.84-0.86x those at 0 (relu-tinystories, 172 to 11008 neurons;
 * `measureTrace().newRunsPerNeuron`). For OPT-6.7B it is an assumption carried over (0.81x there; its
 * activations were not available here); pass 0 for neurons in no particular order.
 */
export const CALIBRATED_COACTIVATION = 0.2;

export const TRACE_PRESETS: Readonly<Record<string, TracePreset>> = {
  "opt-6.7b-paper": { name: "opt-6.7b-paper", activeFraction: 0.1, overlap: 0.7, skew: 0.6, coactivation: CALIBRATED_COACTIVATION, source: "LLM in a flash, OPT-6.7B: ~10% active, ~2.4% newly loaded per token at window 5" },
  "relu-tinystories": { name: "relu-tinystories", activeFraction: 0.08, overlap: 0.2, skew: 0.25, coactivation: CALIBRATED_COACTIVATION, source: "shared/models README §6-7 (babyllama-tok105-relu, stories260K-relu layers 2-4)" },
};

/** A {@link NeuronSelector} that also predicts the next layer's set early (Deja Vu's lookahead). */
export interface LookaheadSelector extends NeuronSelector {
  /** During layer `layer`'s FFN, from its input `x`: the neurons layer `layer + 1` will need, ascending. */
  predictNext(layer: number, x: Float32Array, out: Int32Array): number;
}

/** Draws active sets per token and layer from {@link TraceParams}. A new token starts at each layer-0 call. */
export class TraceSelector implements LookaheadSelector {
  readonly name: string;
  readonly params: Required<TraceParams>;
  private readonly rng: XorShift32;
  private readonly predictRng: XorShift32;
  private readonly clusterRng: XorShift32; // only drawn from when coactivation > 0, so 0 gives the old trace exactly
  private readonly cdf: Float64Array; // popularity by rank, cumulative
  private readonly order: Int32Array[]; // per layer: rank → neuron
  private readonly prev: Int32Array[]; // per layer: the last token's set
  private readonly prevCount: Int32Array;
  private readonly madeAt: Int32Array; // per layer: token whose set `prev` holds
  private readonly mark: Uint8Array;
  private readonly scratch: Int32Array;
  private token = -1;

  constructor(readonly neurons: number, readonly layers: number, params: TraceParams, name = "trace") {
    const p = { seed: 1, lookaheadRecall: 1, coactivation: 0, firstTokenAll: false, ...params };
    if (!(p.activeFraction > 0 && p.activeFraction <= 1)) throw new FlashError("BAD_ARGUMENT", `activeFraction must be in (0, 1], got ${p.activeFraction}`);
    if (!(p.overlap >= 0 && p.overlap <= 1)) throw new FlashError("BAD_ARGUMENT", `overlap must be in [0, 1], got ${p.overlap}`);
    if (!(p.skew >= 0)) throw new FlashError("BAD_ARGUMENT", `skew must be ≥ 0, got ${p.skew}`);
    if (!(p.coactivation >= 0 && p.coactivation < 1)) throw new FlashError("BAD_ARGUMENT", `coactivation must be in [0, 1), got ${p.coactivation}`);
    this.params = p;
    this.name = name;
    this.rng = new XorShift32(p.seed);
    this.predictRng = new XorShift32(p.seed + 7919);
    this.clusterRng = new XorShift32(p.seed + 104729);
    this.cdf = new Float64Array(neurons);
    let sum = 0;
    for (let r = 0; r < neurons; r++) this.cdf[r] = sum += 1 / Math.pow(r + 1, p.skew);
    for (let r = 0; r < neurons; r++) this.cdf[r] /= sum;
    this.order = Array.from({ length: layers }, () => shuffled(neurons, this.rng));
    this.prev = Array.from({ length: layers }, () => new Int32Array(neurons));
    this.prevCount = new Int32Array(layers);
    this.madeAt = new Int32Array(layers).fill(-1);
    this.mark = new Uint8Array(neurons);
    this.scratch = new Int32Array(neurons);
  }

  /** Neurons active per token in a layer. */
  get activeCount(): number {
    return Math.max(1, Math.round(this.params.activeFraction * this.neurons));
  }

  select(layer: number, _x: Float32Array, out: Int32Array): number {
    if (layer === 0) this.token++;
    const set = this.setOf(layer); // drawn even when unused, so later tokens do not depend on firstTokenAll
    if (this.params.firstTokenAll && this.token <= 0) {
      for (let i = 0; i < this.neurons; i++) out[i] = i;
      return this.neurons;
    }
    out.set(set);
    return set.length;
  }

  predictNext(layer: number, _x: Float32Array, out: Int32Array): number {
    if (layer + 1 >= this.layers) return 0;
    const set = this.setOf(layer + 1);
    const recall = this.params.lookaheadRecall;
    let n = 0;
    for (let i = 0; i < set.length; i++) if (recall >= 1 || this.predictRng.next() < recall) out[n++] = set[i];
    return n;
  }

  // The current token's set for `layer`, drawn once: a share `overlap` kept from the previous token,
  // the rest drawn by popularity among the neurons not yet taken.
  private setOf(layer: number): Int32Array {
    const t = Math.max(this.token, 0);
    if (this.madeAt[layer] === t) return this.prev[layer].subarray(0, this.prevCount[layer]);
    const k = this.activeCount;
    const prev = this.prev[layer];
    const prevN = this.madeAt[layer] < 0 ? 0 : this.prevCount[layer];
    const keep = Math.min(prevN, Math.round(this.params.overlap * k));
    const out = this.scratch;
    const mark = this.mark;
    // Partial Fisher-Yates over the previous set picks `keep` of them.
    for (let i = 0; i < keep; i++) {
      const j = i + this.rng.int(prevN - i);
      const v = prev[j];
      prev[j] = prev[i];
      prev[i] = v;
      out[i] = v;
      mark[v] = 1;
    }
    let n = keep;
    const order = this.order[layer];
    const co = this.params.coactivation;
    let tries = 0;
    let last = -1; // the previous newly drawn neuron
    while (n < k) {
      let v: number;
      if (co > 0 && last >= 0 && last + 1 < this.neurons && !mark[last + 1] && this.clusterRng.next() < co) v = last + 1; // its storage neighbour
      else {
        v = ++tries < 64 * k ? order[lowerBound(this.cdf, this.rng.next())] : order[this.rng.int(this.neurons)];
        if (mark[v]) continue;
      }
      mark[v] = 1;
      out[n++] = v;
      last = v;
    }
    for (let i = 0; i < n; i++) mark[out[i]] = 0;
    const set = out.subarray(0, n).sort();
    prev.set(set);
    this.prevCount[layer] = n;
    this.madeAt[layer] = t;
    return prev.subarray(0, n);
  }
}

/** Figures of a trace, measured by running it (fractions of a layer's neurons, mean over tokens after the first `window`). */
export interface TraceStats {
  activeFraction: number;
  /** Share of the layer active now and in none of the previous `window − 1` tokens: what a window of `window` must load per token. */
  newPerToken: number;
  window: number;
  /** Union of the active sets over the last k tokens, k = 1, 2, 4, 8. */
  union: Record<number, number>;
  /** Share of all activations that fall on the most active 10% of neurons. */
  top10Share: number;
  /** Runs of consecutively stored neurons the newly needed ones (`newPerToken`) fall into, per newly needed neuron (1 = none adjacent). */
  newRunsPerNeuron: number;
}

/** Runs a fresh trace of `params` for `tokens` tokens (first layer only, every layer is alike) and measures it. */
export function measureTrace(neurons: number, params: TraceParams, tokens = 200, window = 5): TraceStats {
  const sel = new TraceSelector(neurons, 1, params);
  const out = new Int32Array(neurons);
  const x = new Float32Array(0);
  const history: Int32Array[] = [];
  const counts = new Float64Array(neurons);
  const ks = [1, 2, 4, 8];
  const unionSum: Record<number, number> = { 1: 0, 2: 0, 4: 0, 8: 0 };
  let active = 0;
  let fresh = 0;
  let freshCount = 0;
  let freshRuns = 0;
  let measured = 0;
  const seen = new Int32Array(neurons).fill(-1);
  for (let t = 0; t < tokens; t++) {
    const n = sel.select(0, x, out);
    const set = out.slice(0, n);
    history.push(set);
    for (const v of set) counts[v]++;
    if (t < Math.max(window, 8)) continue;
    measured++;
    active += n / neurons;
    // newly needed: not in the previous window-1 sets
    const stamp = t * 2;
    for (let j = 1; j < window; j++) for (const v of history[t - j]) seen[v] = stamp;
    let f = 0;
    let prevFresh = -2;
    for (const v of set) {
      if (seen[v] === stamp) continue;
      f++;
      if (v !== prevFresh + 1) freshRuns++; // `set` is ascending
      prevFresh = v;
    }
    fresh += f / neurons;
    freshCount += f;
    for (const k of ks) {
      const s2 = t * 2 + 1;
      let u = 0;
      for (let j = 0; j < k; j++) for (const v of history[t - j]) if (seen[v] !== s2) { seen[v] = s2; u++; }
      unionSum[k] += u / neurons;
      // reset marks so the next k starts clean
      for (let j = 0; j < k; j++) for (const v of history[t - j]) seen[v] = -1;
    }
  }
  const sorted = Array.from(counts).sort((a, b) => b - a);
  const total = sorted.reduce((a, b) => a + b, 0);
  const top = sorted.slice(0, Math.ceil(neurons / 10)).reduce((a, b) => a + b, 0);
  const m = Math.max(measured, 1);
  return {
    activeFraction: active / m,
    newPerToken: fresh / m,
    window,
    union: Object.fromEntries(ks.map((k) => [k, unionSum[k] / m])),
    top10Share: total > 0 ? top / total : 0,
    newRunsPerNeuron: freshCount > 0 ? freshRuns / freshCount : 0,
  };
}

function shuffled(n: number, rng: XorShift32): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const v = a[i];
    a[i] = a[j];
    a[j] = v;
  }
  return a;
}

function lowerBound(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid] < u) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
