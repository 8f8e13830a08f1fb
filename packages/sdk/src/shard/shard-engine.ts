import { FlashError } from "../errors.js";
import { openFlm } from "../format/reader.js";
import type { FlmFile } from "../format/reader.js";
import type { FfnStorageLayout, FlashStrategy } from "../flash/flash-ffn.js";
import { FlashFfn } from "../flash/flash-ffn.js";
import { ffnLayout } from "../flash/open-checks.js";
import { Kernels } from "../kernels/loader.js";
import type { WasmBlock } from "../kernels/loader.js";
import { headSize } from "../model/config.js";
import type { ModelConfig } from "../model/config.js";
import { ropeFactors } from "../model/transformer.js";
import type { Matrix } from "../model/weights.js";
import { WeightStore, matvec } from "../model/weights.js";
import { LowRankPredictor } from "../sparsity/predictor.js";
import type { NeuronSelector } from "../sparsity/selector.js";
import { TraceSelector } from "../sparsity/trace-selector.js";
import type { TraceParams } from "../sparsity/trace-selector.js";
import { RangeSelector } from "./range-selector.js";
import { AllNeurons } from "../sparsity/selector.js";
import type { FlashSource } from "../source.js";
import type { ShardSlice } from "./plan.js";
import type { CrcPiece } from "./resident.js";
import { loadParts } from "./resident.js";
import { shardParts } from "./parts.js";

/** What a shard is told at start: its slice, and how to run its FFN (from the coordinator's plan). */
export interface ShardConfig {
  /** Every shard's slice (the checksum split depends on all of them); this shard is `slices[index]`. */
  slices: ShardSlice[];
  index: number;
  contextLength: number;
  strategy: FlashStrategy;
  window?: number;
  strictWindow?: boolean;
  maxGapBytes?: number;
  /** Neuron cache slots, and staging bytes, from the coordinator's memory plan for this shard. */
  capacity: number;
  stagingBytes: number;
  /**
   * Which neurons: every one, the file's predictors (their rows of this shard's neurons), or (for
   * benchmarks) an activation trace every shard draws identically and keeps its range of.
   */
  selector: "all" | "predictor" | { trace: TraceParams };
  /** Read each neuron as one bundle (default true; false is the bench's "windowing only" baseline). */
  bundling?: boolean;
  prefetch?: boolean;
  verifyReads?: boolean;
}

/** One layer's resident slice on a shard. */
interface ShardLayer {
  wq: Matrix;
  wk: Matrix;
  wv: Matrix;
  wo: Matrix; // [dim][heads·headSize]: the columns of this shard's heads
  bq: number;
  bk: number;
  bv: number;
}

/**
 * A shard's part of the model, in its own WASM memory: attention of its heads (with their KV cache),
 * the FFN of its neuron range through its own {@link FlashFfn} (own cache, own reads through its own
 * source), and its vocabulary rows of the classifier. Each step reads the coordinator's input vector
 * and writes this shard's partial result; the coordinator sums the partials.
 */
export class ShardEngine {
  private readonly blocks: WasmBlock[] = [];
  private readonly layers: ShardLayer[] = [];
  private readonly classifier: Matrix;
  private readonly classifierBias: number;
  private readonly x: number; // input, dim
  private readonly residual: number; // residual stream entering the FFN block, dim (0 unless the predictors read it)
  private readonly out: number; // partial output, dim
  private readonly q: number;
  private readonly attOut: number;
  private readonly att: number;
  private readonly logitsPtr: number;
  private readonly xq: number;
  private readonly cos: number;
  private readonly sin: number;
  private readonly keyCache: number;
  private readonly valueCache: number;
  private disposed = false;
  /** Wall time in each kind of step, ms (the FFN's includes its I/O wait; see `ffn.stats` for the split). */
  readonly busy = { attentionMs: 0, feedForwardMs: 0, logitsMs: 0 };

  private constructor(
    readonly k: Kernels,
    readonly config: ModelConfig,
    readonly slice: ShardSlice,
    readonly contextLength: number,
    private readonly store: WeightStore,
    readonly ffn: FlashFfn,
    private readonly predictor: LowRankPredictor | undefined,
  ) {
    const c = config;
    const hs = headSize(c);
    const nh = slice.heads.count;
    const kv = slice.kvHeads.count * hs;
    const has = (n: string) => store.has(n);
    for (let l = 0; l < c.nLayers && nh > 0; l++) {
      const L = `layers.${l}.`;
      this.layers.push({
        wq: store.get(L + "wq"),
        wk: store.get(L + "wk"),
        wv: store.get(L + "wv"),
        wo: store.get(L + "wo"),
        bq: has(L + "bq") ? store.vector(L + "bq") : 0,
        bk: has(L + "bk") ? store.vector(L + "bk") : 0,
        bv: has(L + "bv") ? store.vector(L + "bv") : 0,
      });
    }
    this.classifier = store.get("output");
    this.classifierBias = has("output_bias") ? store.vector("output_bias") : 0;
    const f32 = (n: number) => {
      const b = this.k.alloc(Math.max(n, 1) * 4);
      this.blocks.push(b);
      this.k.f32(b.ptr, Math.max(n, 1)).fill(0);
      return b.ptr;
    };
    this.x = f32(c.dim);
    this.residual = predictor?.input === "residual" ? f32(c.dim) : 0;
    this.out = f32(c.dim);
    this.q = f32(nh * hs);
    this.attOut = f32(nh * hs);
    this.att = f32(nh * contextLength);
    this.logitsPtr = f32(slice.vocab.count);
    this.xq = f32(Math.ceil((c.dim + 8) / 2));
    this.cos = f32(hs / 2);
    this.sin = f32(hs / 2);
    this.keyCache = f32(c.nLayers * contextLength * kv);
    this.valueCache = f32(c.nLayers * contextLength * kv);
  }

  /**
   * WASM bytes of a shard's activations, scratch and KV cache (for the memory plan); `residual`: its
   * predictors read the residual stream, which it then holds too.
   */
  static stateBytes(c: ModelConfig, slice: ShardSlice, contextLength: number, residual = false): number {
    const hs = headSize(c);
    const nh = slice.heads.count;
    const floats = 2 * c.dim + 2 * nh * hs + nh * contextLength + slice.vocab.count + Math.ceil((c.dim + 8) / 2) + hs + 2 * c.nLayers * contextLength * slice.kvHeads.count * hs;
    return floats * 4 + 11 * 48 + (residual ? c.dim * 4 + 48 : 0);
  }

  /** The FFN storage layout of a shard: the model's, over its neuron range (bundles of a range are contiguous). */
  static layout(file: FlmFile, slice: ShardSlice): FfnStorageLayout {
    return ffnLayout(file, slice.neurons);
  }


  /**
   * Opens a shard over its own source: reads the manifest, loads its resident slice straight into a
   * fresh WASM memory, and returns the engine with the CRC pieces of the resident bytes it owns.
   */
  static async open(source: FlashSource, cfg: ShardConfig, signal?: AbortSignal): Promise<{ engine: ShardEngine; pieces: CrcPiece[] }> {
    const file = await openFlm(source, { signal });
    const m = file.manifest;
    const slice = cfg.slices[cfg.index];
    if (!slice) throw new FlashError("BAD_ARGUMENT", `shard ${cfg.index} has no slice (${cfg.slices.length} shards)`);
    const withPredictor = cfg.selector === "predictor";
    if (withPredictor && !m.predictor) throw new FlashError("BAD_ARGUMENT", "this file has no predictors: run `flashllm calibrate` on it first, or choose another selector");
    const k = await Kernels.load();
    const store = new WeightStore(k);
    let ffn: FlashFfn | undefined;
    let predictor: LowRankPredictor | undefined;
    try {
      const parts = shardParts(m, cfg.slices, slice, withPredictor);
      const { pieces, host } = await loadParts(file, k, store, parts, { signal, toHost: (p) => p.tensor.startsWith("predictor.") });
      const selector: NeuronSelector = withPredictor
        ? (predictor = new LowRankPredictor(k, {
            dim: m.config.dim,
            hiddenDim: slice.neurons.count,
            input: m.predictor!.input, // PowerInfer's read the residual stream: the coordinator then broadcasts it
            layers: m.predictor!.layers.map((p, l) => ({ rank: p.rank, threshold: p.threshold, a: host.get(`predictor.${l}.a`)!, b: host.get(`predictor.${l}.b`)!, c: host.get(`predictor.${l}.c`)! })),
          }))
        : typeof cfg.selector === "object"
          ? new RangeSelector(new TraceSelector(m.config.hiddenDim, m.config.nLayers, cfg.selector.trace, "trace"), slice.neurons, m.config.hiddenDim)
          : new AllNeurons(slice.neurons.count);
      if (cfg.verifyReads) await file.loadBundleCrcs({ signal });
      const first = slice.neurons.first;
      ffn = new FlashFfn(k, source, ShardEngine.layout(file, slice), {
        strategy: cfg.strategy,
        capacity: cfg.capacity,
        stagingBytes: cfg.stagingBytes,
        window: cfg.window,
        strictWindow: cfg.strictWindow,
        maxGapBytes: cfg.maxGapBytes,
        prefetch: cfg.prefetch,
        bundling: cfg.bundling,
        selector,
        verifyBundle: cfg.verifyReads ? (l, i, bytes) => file.verifyBundle(l, first + i, bytes) : undefined,
      });
      return { engine: new ShardEngine(k, m.config, slice, cfg.contextLength, store, ffn, predictor), pieces };
    } catch (e) {
      await ffn?.dispose();
      predictor?.dispose();
      store.dispose();
      throw e;
    }
  }

  /** WASM memory of this shard. */
  get memoryBytes(): number {
    return this.k.memoryBytes;
  }

  /**
   * Attention of this shard's heads for the normalised input `input` at `pos`: q/k/v of its heads
   * (k and v into its KV cache), RoPE, attention, then its columns of the output projection: a
   * partial sum of the projection, written to `output` (zeros for a shard without heads).
   */
  attention(layer: number, pos: number, input: Float32Array, output: Float32Array): void {
    const { k, config: c, slice } = this;
    const t0 = performance.now();
    if (slice.heads.count === 0) {
      output.fill(0);
      return;
    }
    const hs = headSize(c);
    const nh = slice.heads.count;
    const nkv = slice.kvHeads.count;
    const kv = nkv * hs;
    const L = this.layers[layer];
    k.f32(this.x, c.dim).set(input);
    const layerK = this.keyCache + layer * this.contextLength * kv * 4;
    const layerV = this.valueCache + layer * this.contextLength * kv * 4;
    const kAt = layerK + pos * kv * 4;
    const vAt = layerV + pos * kv * 4;
    this.linear(this.q, L.wq, L.bq);
    this.linear(kAt, L.wk, L.bk);
    this.linear(vAt, L.wv, L.bv);
    if (c.ropeStyle !== "none") {
      ropeFactors(c.ropeTheta, hs, pos, k.f32(this.cos, hs / 2), k.f32(this.sin, hs / 2));
      const neox = c.ropeStyle === "neox" ? 1 : 0;
      k.k.rope(this.q, nh, hs, this.cos, this.sin, neox);
      k.k.rope(kAt, nkv, hs, this.cos, this.sin, neox);
    }
    k.k.attention(this.attOut, this.q, layerK, layerV, this.att, pos, nh, nkv, hs, kv);
    matvec(k, this.out, L.wo, this.attOut, this.xq);
    output.set(k.f32(this.out, c.dim));
    this.busy.attentionMs += performance.now() - t0;
  }

  /**
   * This shard's neurons of the FFN for the normalised input: a partial sum written to `output`.
   * `residual`: the stream entering the FFN block, which predictors of the residual stream read.
   */
  async feedForward(layer: number, input: Float32Array, output: Float32Array, signal?: AbortSignal, residual?: Float32Array): Promise<void> {
    const { k, config: c } = this;
    k.f32(this.x, c.dim).set(input);
    if (this.residual && !residual) throw new FlashError("BAD_ARGUMENT", "this shard's predictors read the residual stream, which the coordinator did not send");
    if (this.residual) k.f32(this.residual, c.dim).set(residual!);
    if (layer === 0) this.ffn.beginToken(); // counts tokens in the FFN statistics
    const t0 = performance.now();
    try {
      await this.ffn.run(layer, this.x, this.out, signal, this.residual || undefined);
    } finally {
      this.busy.feedForwardMs += performance.now() - t0;
    }
    output.set(k.f32(this.out, c.dim));
  }

  /** Logits of this shard's vocabulary rows for the final hidden state. */
  logits(input: Float32Array, output: Float32Array): void {
    const { k, config: c } = this;
    const t0 = performance.now();
    k.f32(this.x, c.dim).set(input);
    matvec(k, this.logitsPtr, this.classifier, this.x, this.xq);
    if (this.classifierBias) k.k.add(this.logitsPtr, this.logitsPtr, this.classifierBias, this.slice.vocab.count);
    output.set(k.f32(this.logitsPtr, this.slice.vocab.count));
    this.busy.logitsMs += performance.now() - t0;
  }

  private linear(out: number, m: Matrix, bias: number): void {
    matvec(this.k, out, m, this.x, this.xq);
    if (bias) this.k.k.add(out, out, bias, m.rows);
  }

  /** Frees every block (a prefetch in flight is waited for first). */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.ffn.dispose();
    this.predictor?.dispose();
    for (const b of this.blocks) this.k.free(b);
    this.blocks.length = 0;
    this.store.dispose();
  }
}
