import { FlashError, throwIfAborted } from "../errors.js";
import { ALLOC_BLOCK_OVERHEAD } from "../kernels/alloc-overhead.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { ModelConfig } from "./config.js";
import { headSize, kvDim } from "./config.js";
import type { FfnBackend } from "./ffn.js";
import type { ForwardPass } from "./forward-pass.js";
import type { Matrix, WeightStore } from "./weights.js";
import { copyRow, matvec } from "./weights.js";

/** A projection: the matrix, and its bias (0 when the model has none). */
interface Linear {
  m: Matrix;
  bias: number;
}
/** A norm's weight, and its bias (LayerNorm only; 0 otherwise). */
interface Norm {
  w: number;
  b: number;
}
/** One layer's resident tensors, resolved once so the per-token loop does no name lookups. */
interface LayerWeights {
  attnNorm: Norm;
  wq: Linear;
  wk: Linear;
  wv: Linear;
  wo: Linear;
  ffnNorm: Norm;
  /** The FFN's down bias (OPT family), 0 when none: the rest of the FFN is the backend's. */
  downBias: number;
}

/**
 * run.c's RoPE angles, in float32: freq = 1/θ^(hd/head_size), angle = pos·freq, for hd = 0, 2, 4…;
 * written into `cos` and `sin` (head_size/2 each). Every head uses the same factors.
 */
export function ropeFactors(theta: number, hs: number, pos: number, cos: Float32Array, sin: Float32Array): void {
  const f = Math.fround;
  for (let j = 0; j < hs / 2; j++) {
    const freq = f(1 / f(Math.pow(theta, f((2 * j) / hs))));
    const angle = f(pos * freq);
    cos[j] = Math.cos(angle);
    sin[j] = Math.sin(angle);
  }
}

/**
 * The forward pass, written the way llama2.c's run.c writes it, on the WASM kernels; one token at
 * one position per call. Two families: llama (RMSNorm, RoPE, grouped-query attention, gated FFN) and
 * OPT/GPT (LayerNorm with bias, learned positions, attention biases, plain FFN with biases).
 *
 * Resident tensors expected in the store: `tok_embeddings`, `output`, `norm`, and per layer
 * `layers.{l}.attn_norm|wq|wk|wv|wo|ffn_norm`; OPT/GPT add `pos_embeddings`, `norm_bias`, and per layer
 * `attn_norm_bias`, `ffn_norm_bias`, `bo`, `b2` (down bias), and where the model has them `bq|bk|bv`
 * and `output_bias`.
 */
export class Transformer implements ForwardPass {
  readonly config: ModelConfig;
  /** Positions the KV cache holds (≤ seqLen). */
  readonly contextLength: number;
  private readonly blocks: WasmBlock[] = [];
  // Activations at the current position (each `dim` f32 unless said otherwise).
  private readonly x: number; // residual stream
  private readonly xb: number; // normalised input of attention / FFN, then attention output
  private readonly xb2: number; // projection outputs added to the residual
  private readonly q: number; // query
  private readonly att: number; // attention scores [nHeads][contextLength]
  private readonly logits: number; // [vocab]
  private readonly xq: number; // i16 scratch for q8 matvecs
  private readonly cos: number; // [headSize/2] RoPE factors of this position
  private readonly sin: number;
  private readonly keyCache: number; // [nLayers][contextLength][kvDim]
  private readonly valueCache: number; // [nLayers][contextLength][kvDim]
  private readonly layers: LayerWeights[];
  private readonly embedding: Matrix; // [vocab][dim]
  private readonly positions: Matrix | undefined; // [maxPositions][dim], learned positions only
  private readonly finalNorm: Norm;
  private readonly classifier: Linear; // [vocab][dim] (+ bias)

  constructor(
    private readonly k: Kernels,
    config: ModelConfig,
    weights: WeightStore,
    private readonly ffn: FfnBackend,
    contextLength = config.seqLen,
  ) {
    const llama = config.norm === "rmsnorm" && config.ropeStyle !== "none" && config.gated;
    const opt = config.norm === "layernorm" && config.ropeStyle === "none" && !config.gated;
    if (!llama && !opt) {
      throw new FlashError("UNSUPPORTED", `this forward pass runs llama-family (rmsnorm, rotary, gated FFN) and OPT-family (layernorm, learned positions, plain FFN) models; got norm=${config.norm} rope=${config.ropeStyle} gated=${config.gated}`);
    }
    this.config = config;
    this.contextLength = Math.min(contextLength, config.seqLen);
    // Resolve every tensor now: a missing one is reported at construction, not at the first token.
    const w = weights;
    const bias = (name: string) => (w.has(name) ? w.vector(name) : 0);
    const linear = (name: string, b: string): Linear => ({ m: w.get(name), bias: bias(b) });
    const norm = (name: string): Norm => ({ w: w.vector(name), b: config.norm === "layernorm" ? w.vector(name + "_bias") : 0 });
    this.layers = Array.from({ length: config.nLayers }, (_, l) => {
      const L = `layers.${l}.`;
      return {
        attnNorm: norm(L + "attn_norm"),
        wq: linear(L + "wq", L + "bq"),
        wk: linear(L + "wk", L + "bk"),
        wv: linear(L + "wv", L + "bv"),
        wo: linear(L + "wo", L + "bo"),
        ffnNorm: norm(L + "ffn_norm"),
        downBias: bias(L + "b2"),
      };
    });
    this.embedding = w.get("tok_embeddings");
    this.positions = config.ropeStyle === "none" ? w.get("pos_embeddings") : undefined;
    this.finalNorm = norm("norm");
    this.classifier = linear("output", "output_bias");
    const { dim, vocabSize, nLayers, nHeads } = config;
    const kv = kvDim(config);
    const f32 = (n: number) => {
      let b: WasmBlock;
      try {
        b = k.alloc(n * 4);
      } catch (e) {
        this.dispose(); // an allocation failed part way: give back what was taken
        throw e;
      }
      this.blocks.push(b);
      k.f32(b.ptr, n).fill(0);
      return b.ptr;
    };
    this.x = f32(dim);
    this.xb = f32(dim);
    this.xb2 = f32(dim);
    this.q = f32(dim);
    this.att = f32(nHeads * this.contextLength);
    this.logits = f32(vocabSize);
    this.xq = f32(Math.ceil((Math.max(dim, config.hiddenDim) + 8) / 2));
    this.cos = f32(headSize(config) / 2);
    this.sin = f32(headSize(config) / 2);
    this.keyCache = f32(nLayers * this.contextLength * kv);
    this.valueCache = f32(nLayers * this.contextLength * kv);
  }

  /** WASM bytes of activations, scratch and KV cache, for memory accounting. */
  static stateBytes(c: ModelConfig, contextLength: number): number {
    const kv = kvDim(c);
    const floats = 4 * c.dim + c.nHeads * contextLength + c.vocabSize + Math.ceil((Math.max(c.dim, c.hiddenDim) + 8) / 2) + headSize(c) + 2 * c.nLayers * contextLength * kv;
    return floats * 4 + 11 * ALLOC_BLOCK_OVERHEAD; // 11 blocks
  }

  /** Runs token `token` at position `pos`; returns a view of the logits valid until the next call. */
  async forward(token: number, pos: number, signal?: AbortSignal): Promise<Float32Array> {
    const { k, config: c } = this;
    const { dim, nHeads, nKvHeads, nLayers } = c;
    const hs = headSize(c);
    const kv = kvDim(c);
    if (!(token >= 0 && token < c.vocabSize)) throw new FlashError("BAD_ARGUMENT", `token ${token} is outside the vocabulary (${c.vocabSize})`);
    if (!(pos >= 0 && pos < this.contextLength)) {
      throw new FlashError("CONTEXT_OVERFLOW", `position ${pos} is beyond the context of ${this.contextLength} tokens`, { pos, contextLength: this.contextLength });
    }
    const rotary = c.ropeStyle !== "none";
    const neox = c.ropeStyle === "neox" ? 1 : 0;
    if (rotary) this.ropeFactors(pos);
    copyRow(k, this.x, this.embedding, token);
    if (this.positions) {
      copyRow(k, this.xb, this.positions, pos);
      k.k.add(this.x, this.x, this.xb, dim);
    }
    this.ffn.beginToken(pos);

    for (let l = 0; l < nLayers; l++) {
      throwIfAborted(signal);
      const L = this.layers[l];
      // Attention: normalise, project q and (straight into the cache at `pos`) k and v, rotate, attend.
      this.norm(this.xb, this.x, L.attnNorm);
      const layerK = this.keyCache + l * this.contextLength * kv * 4;
      const layerV = this.valueCache + l * this.contextLength * kv * 4;
      const kAt = layerK + pos * kv * 4;
      const vAt = layerV + pos * kv * 4;
      this.linear(this.q, L.wq, this.xb);
      this.linear(kAt, L.wk, this.xb);
      this.linear(vAt, L.wv, this.xb);
      if (rotary) {
        k.k.rope(this.q, nHeads, hs, this.cos, this.sin, neox);
        k.k.rope(kAt, nKvHeads, hs, this.cos, this.sin, neox);
      }
      k.k.attention(this.xb, this.q, layerK, layerV, this.att, pos, nHeads, nKvHeads, hs, kv);
      this.linear(this.xb2, L.wo, this.xb);
      k.k.add(this.x, this.x, this.xb2, dim);

      // Feed-forward: the backend decides where the weights come from; the down bias is resident.
      this.norm(this.xb, this.x, L.ffnNorm);
      await this.ffn.run(l, this.xb, this.xb2, signal, this.x);
      if (L.downBias) k.k.add(this.xb2, this.xb2, L.downBias, dim);
      k.k.add(this.x, this.x, this.xb2, dim);
    }
    this.norm(this.x, this.x, this.finalNorm);
    this.linear(this.logits, this.classifier, this.x);
    return k.f32(this.logits, c.vocabSize);
  }

  // RMSNorm, or LayerNorm with its bias, by the model's family.
  private norm(out: number, x: number, n: Norm): void {
    const { k, config: c } = this;
    if (c.norm === "rmsnorm") k.k.rmsnorm(out, x, n.w, c.dim, c.normEps);
    else k.k.layernorm(out, x, n.w, n.b, c.dim, c.normEps);
  }

  // out = W·x (+ b when the model has that bias).
  private linear(out: number, p: Linear, x: number): void {
    matvec(this.k, out, p.m, x, this.xq);
    if (p.bias) this.k.k.add(out, out, p.bias, p.m.rows);
  }

  private ropeFactors(pos: number): void {
    const hs = headSize(this.config);
    ropeFactors(this.config.ropeTheta, hs, pos, this.k.f32(this.cos, hs / 2), this.k.f32(this.sin, hs / 2));
  }

  /** Frees activations and the KV cache (not the weights or the FFN backend, which the caller owns). */
  dispose(): void {
    for (const b of this.blocks) this.k.free(b);
    this.blocks.length = 0;
  }
}
