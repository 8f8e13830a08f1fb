import { FlashError } from "../errors.js";
import { ALLOC_BLOCK_OVERHEAD } from "../kernels/alloc-overhead.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { NeuronSelector } from "./selector.js";
import type { PredictorInput } from "../format/types.js";

/** One layer's low-rank predictor: `score = B·relu(A·x) + c`, neuron active when `score > threshold`. */
export interface PredictorLayer {
  /** Rank r. */
  rank: number;
  /** `[r][dim]`. */
  a: Float32Array;
  /** `[hidden][r]`. */
  b: Float32Array;
  /** `[hidden]`. */
  c: Float32Array;
  /** Decision threshold on the score (a logit), chosen for the target recall. */
  threshold: number;
}

/** Predictors for every layer of a model, with what they were made for. */
export interface Predictor {
  dim: number;
  hiddenDim: number;
  layers: PredictorLayer[];
  /** Share of truly active neurons the thresholds were chosen to keep (e.g. 0.95); unknown for some imported ones. */
  recallTarget?: number;
  /** The vector it reads: the FFN input (default) or the residual stream before the FFN norm (PowerInfer's). */
  input?: PredictorInput;
  /**
   * Trained lookahead (optional): entry `l` names layer `l+1`'s active neurons from layer `l`'s FFN
   * input (one per layer but the last). Without it, {@link LowRankPredictor.predictNext} runs layer
   * `l+1`'s own predictor on layer `l`'s input.
   */
  lookahead?: PredictorLayer[];
}

/** A predictor layer's weights in WASM memory. */
interface LayerPtrs {
  a: number;
  b: number;
  c: number;
  rank: number;
  threshold: number;
}

/**
 * The paper's sparsity predictor as a {@link NeuronSelector}: per layer a small low-rank network
 * evaluated on the FFN input says which neurons will be active, before their weights are read.
 * Runs on the WASM kernels (two matvecs per layer); its weights live in WASM memory and count
 * against the budget.
 */
export class LowRankPredictor implements NeuronSelector {
  readonly name = "predictor";
  readonly input: PredictorInput;
  private readonly blocks: WasmBlock[] = [];
  private readonly ptrs: LayerPtrs[] = [];
  private readonly ahead: LayerPtrs[] = []; // trained lookahead: entry l names layer l+1 from layer l's input
  private readonly x: WasmBlock;
  private readonly z: WasmBlock;
  private readonly s: WasmBlock;

  constructor(private readonly k: Kernels, readonly predictor: Predictor) {
    const { dim, hiddenDim } = predictor;
    this.input = predictor.input ?? "ffn";
    if (predictor.lookahead && predictor.lookahead.length !== predictor.layers.length - 1) {
      throw new FlashError("WRONG_DIMS", `predictor lookahead has ${predictor.lookahead.length} entries; ${predictor.layers.length} layers need ${predictor.layers.length - 1}`);
    }
    let maxRank = 1;
    const upload = (p: PredictorLayer, what: string) => {
      if (p.a.length !== p.rank * dim || p.b.length !== hiddenDim * p.rank || p.c.length !== hiddenDim) {
        throw new FlashError("WRONG_DIMS", `${what}: shapes do not match rank ${p.rank}, dim ${dim}, hidden ${hiddenDim}`);
      }
      const a = k.allocF32(p.a);
      const b = k.allocF32(p.b);
      const c = k.allocF32(p.c);
      this.blocks.push(a, b, c);
      maxRank = Math.max(maxRank, p.rank);
      return { a: a.ptr, b: b.ptr, c: c.ptr, rank: p.rank, threshold: p.threshold };
    };
    for (const [l, p] of predictor.layers.entries()) this.ptrs.push(upload(p, `predictor layer ${l}`));
    for (const [l, p] of (predictor.lookahead ?? []).entries()) this.ahead.push(upload(p, `lookahead of layer ${l}`));
    this.x = k.alloc(dim * 4);
    this.z = k.alloc(maxRank * 4);
    this.s = k.alloc(hiddenDim * 4);
  }

  /** WASM bytes a predictor of this shape takes (for the memory plan). */
  static bytes(p: Predictor): number {
    let maxRank = 1;
    let total = 0;
    for (const l of [...p.layers, ...(p.lookahead ?? [])]) {
      total += (l.a.length + l.b.length + l.c.length) * 4 + 3 * ALLOC_BLOCK_OVERHEAD;
      maxRank = Math.max(maxRank, l.rank);
    }
    return total + (p.dim + maxRank + p.hiddenDim) * 4 + 3 * ALLOC_BLOCK_OVERHEAD;
  }

  /** Raw scores of every neuron of `layer` for input `x` (a view valid until the next call). */
  scores(layer: number, x: Float32Array): Float32Array {
    return this.run(this.ptrs[layer], x);
  }

  private run(p: LayerPtrs, x: Float32Array): Float32Array {
    const { k } = this;
    const { dim, hiddenDim } = this.predictor;
    k.f32(this.x.ptr, dim).set(x);
    k.k.matvec_f32(this.z.ptr, p.a, this.x.ptr, p.rank, dim);
    k.k.relu(this.z.ptr, p.rank);
    k.k.matvec_f32(this.s.ptr, p.b, this.z.ptr, hiddenDim, p.rank);
    k.k.add(this.s.ptr, this.s.ptr, p.c, hiddenDim);
    return k.f32(this.s.ptr, hiddenDim);
  }

  select(layer: number, x: Float32Array, out: Int32Array): number {
    return this.pick(this.ptrs[layer], x, out);
  }

  private pick(p: LayerPtrs, x: Float32Array, out: Int32Array): number {
    const s = this.run(p, x);
    const t = p.threshold;
    let n = 0;
    for (let i = 0; i < s.length; i++) if (s[i] > t) out[n++] = i;
    return n;
  }

  /** Whether {@link predictNext} uses a lookahead trained for it (else layer l+1's own predictor). */
  get trainedLookahead(): boolean {
    return this.ahead.length > 0;
  }

  /**
   * The lookahead (Deja Vu's idea): names layer `layer+1`'s neurons from layer `layer`'s FFN input, so
   * the flash path (`prefetch`) reads them while this layer computes. With a trained lookahead (made by
   * `flashllm calibrate`: a predictor fitted to the next layer's activity on this layer's input) it
   * uses that; without, layer `layer+1`'s own predictor on this input (the residual stream changes
   * little from one layer to the next). Misses are read on demand: only bytes, never results, depend
   * on it. `flashllm eval` reports its recall and precision per layer.
   */
  predictNext(layer: number, x: Float32Array, out: Int32Array): number {
    if (layer + 1 >= this.ptrs.length) return 0;
    return this.pick(this.ahead[layer] ?? this.ptrs[layer + 1], x, out);
  }

  dispose(): void {
    for (const b of this.blocks) this.k.free(b);
    this.blocks.length = 0;
    this.k.free(this.x);
    this.k.free(this.z);
    this.k.free(this.s);
  }
}
