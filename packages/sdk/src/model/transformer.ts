import { FlashError, throwIfAborted } from "../errors.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { ModelConfig } from "./config.js";
import { headSize, kvDim } from "./config.js";
import type { FfnBackend } from "./ffn.js";
import type { WeightStore } from "./weights.js";
import { copyRow, matvec } from "./weights.js";

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
export class Transformer {
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

  constructor(
    private readonly k: Kernels,
    config: ModelConfig,
    private readonly weights: WeightStore,
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
    return floats * 4 + 11 * 32; // + allocator headers and alignment
  }

  /** Runs token `token` at position `pos`; returns a view of the logits valid until the next call. */
  async forward(token: number, pos: number, signal?: AbortSignal): Promise<Float32Array> {
    const { k, config: c, weights: w } = this;
    const { dim, nHeads, nKvHeads, nLayers } = c;
    const hs = headSize(c);
    const kv = kvDim(c);
    if (!(token >= 0 && token < c.vocabSize)) throw new FlashError("BAD_ARGUMENT", `token ${token} is outside the vocabulary (${c.vocabSize})`);
    if (!(pos >= 0 && pos < this.contextLength)) {
      throw new FlashError("CONTEXT_OVERFLOW", `position ${pos} is beyond the context of ${this.contextLength} tokens`, { pos, contextLength: this.contextLength });
    }
    const rotary = c.ropeStyle !== "none";
    if (rotary) this.ropeFactors(pos);
    copyRow(k, this.x, w.get("tok_embeddings"), token);
    if (!rotary) {
      copyRow(k, this.xb, w.get("pos_embeddings"), pos);
      k.k.add(this.x, this.x, this.xb, dim);
    }
    this.ffn.beginToken(pos);

    for (let l = 0; l < nLayers; l++) {
      throwIfAborted(signal);
      const L = `layers.${l}.`;
      // Attention: normalise, project q and (straight into the cache at `pos`) k and v, rotate, attend.
      this.norm(this.xb, this.x, L + "attn_norm");
      const kAt = this.keyCache + ((l * this.contextLength + pos) * kv) * 4;
      const vAt = this.valueCache + ((l * this.contextLength + pos) * kv) * 4;
      this.linear(this.q, L + "wq", this.xb, L + "bq");
      this.linear(kAt, L + "wk", this.xb, L + "bk");
      this.linear(vAt, L + "wv", this.xb, L + "bv");
      if (rotary) {
        const neox = c.ropeStyle === "neox" ? 1 : 0;
        k.k.rope(this.q, nHeads, hs, this.cos, this.sin, neox);
        k.k.rope(kAt, nKvHeads, hs, this.cos, this.sin, neox);
      }
      const layerK = this.keyCache + l * this.contextLength * kv * 4;
      const layerV = this.valueCache + l * this.contextLength * kv * 4;
      k.k.attention(this.xb, this.q, layerK, layerV, this.att, pos, nHeads, nKvHeads, hs, kv);
      this.linear(this.xb2, L + "wo", this.xb, L + "bo");
      k.k.add(this.x, this.x, this.xb2, dim);

      // Feed-forward: the backend decides where the weights come from; the down bias is resident.
      this.norm(this.xb, this.x, L + "ffn_norm");
      await this.ffn.run(l, this.xb, this.xb2, signal);
      if (w.has(L + "b2")) k.k.add(this.xb2, this.xb2, w.vector(L + "b2"), dim);
      k.k.add(this.x, this.x, this.xb2, dim);
    }
    this.norm(this.x, this.x, "norm");
    this.linear(this.logits, "output", this.x, "output_bias");
    return k.f32(this.logits, c.vocabSize);
  }

  // RMSNorm, or LayerNorm with its bias, by the model's family.
  private norm(out: number, x: number, name: string): void {
    const { k, weights: w, config: c } = this;
    if (c.norm === "rmsnorm") k.k.rmsnorm(out, x, w.vector(name), c.dim, c.normEps);
    else k.k.layernorm(out, x, w.vector(name), w.vector(name + "_bias"), c.dim, c.normEps);
  }

  // out = W·x (+ b when the model has that bias).
  private linear(out: number, weight: string, x: number, bias: string): void {
    const { k, weights: w } = this;
    const m = w.get(weight);
    matvec(k, out, m, x, this.xq);
    if (w.has(bias)) k.k.add(out, out, w.vector(bias), m.rows);
  }

  /** The final hidden state of the last forward call (after the final norm). */
  hiddenState(): Float32Array {
    return this.k.f32(this.x, this.config.dim);
  }

  // run.c's RoPE angles, in float32: freq = 1/θ^(hd/head_size), angle = pos·freq, for hd = 0, 2, 4…
  private ropeFactors(pos: number): void {
    const hs = headSize(this.config);
    const f = Math.fround;
    const cos = this.k.f32(this.cos, hs / 2);
    const sin = this.k.f32(this.sin, hs / 2);
    for (let j = 0; j < hs / 2; j++) {
      const freq = f(1 / f(Math.pow(this.config.ropeTheta, f((2 * j) / hs))));
      const angle = f(pos * freq);
      cos[j] = Math.cos(angle);
      sin[j] = Math.sin(angle);
    }
  }

  /** Frees activations and the KV cache (not the weights or the FFN backend, which the caller owns). */
  dispose(): void {
    for (const b of this.blocks) this.k.free(b);
    this.blocks.length = 0;
  }
}
