import { FlashError, throwIfAborted } from "../errors.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { ModelConfig } from "../model/config.js";
import type { ForwardPass } from "../model/forward-pass.js";
import type { Matrix, WeightStore } from "../model/weights.js";
import { copyRow } from "../model/weights.js";
import type { ShardGroup } from "./group.js";
import { Op } from "./protocol.js";

interface Norm {
  w: number;
  b: number;
}

/**
 * The coordinator's forward pass (DESIGN §8): embedding (and learned positions), every norm, the
 * residual stream, and the biases added once after a reduction live here, in the coordinator's own
 * small WASM memory; attention, FFN and classifier run on the shards. Per layer two steps, each a
 * broadcast of d floats and a sum of K partials in shard order.
 */
export class ShardedTransformer implements ForwardPass {
  readonly contextLength: number;
  private readonly blocks: WasmBlock[] = [];
  private readonly x: number;
  private readonly xb: number;
  private readonly xb2: number;
  private readonly embedding: Matrix;
  private readonly positions: Matrix | undefined;
  private readonly layers: { attnNorm: Norm; ffnNorm: Norm; bo: number; b2: number }[];
  private readonly finalNorm: Norm;
  private readonly logits: Float32Array;

  constructor(
    private readonly k: Kernels,
    readonly config: ModelConfig,
    weights: WeightStore,
    private readonly group: ShardGroup,
    contextLength: number,
  ) {
    this.contextLength = Math.min(contextLength, config.seqLen);
    const w = weights;
    const opt = (name: string) => (w.has(name) ? w.vector(name) : 0);
    const norm = (name: string): Norm => ({ w: w.vector(name), b: config.norm === "layernorm" ? w.vector(name + "_bias") : 0 });
    this.layers = Array.from({ length: config.nLayers }, (_, l) => {
      const L = `layers.${l}.`;
      return { attnNorm: norm(L + "attn_norm"), ffnNorm: norm(L + "ffn_norm"), bo: opt(L + "bo"), b2: opt(L + "b2") };
    });
    this.embedding = w.get("tok_embeddings");
    this.positions = config.ropeStyle === "none" ? w.get("pos_embeddings") : undefined;
    this.finalNorm = norm("norm");
    const f32 = (n: number) => {
      const b = k.alloc(n * 4);
      this.blocks.push(b);
      k.f32(b.ptr, n).fill(0);
      return b.ptr;
    };
    this.x = f32(config.dim);
    this.xb = f32(config.dim);
    this.xb2 = f32(config.dim);
    this.logits = new Float32Array(config.vocabSize);
  }

  /** WASM bytes of the coordinator's activations. */
  static stateBytes(c: ModelConfig): number {
    return 3 * c.dim * 4 + 3 * 48;
  }

  async forward(token: number, pos: number, signal?: AbortSignal): Promise<Float32Array> {
    const { k, config: c, group } = this;
    const dim = c.dim;
    if (!(token >= 0 && token < c.vocabSize)) throw new FlashError("BAD_ARGUMENT", `token ${token} is outside the vocabulary (${c.vocabSize})`);
    if (!(pos >= 0 && pos < this.contextLength)) {
      throw new FlashError("CONTEXT_OVERFLOW", `position ${pos} is beyond the context of ${this.contextLength} tokens`, { pos, contextLength: this.contextLength });
    }
    copyRow(k, this.x, this.embedding, token);
    if (this.positions) {
      copyRow(k, this.xb, this.positions, pos);
      k.k.add(this.x, this.x, this.xb, dim);
    }
    for (let l = 0; l < c.nLayers; l++) {
      throwIfAborted(signal);
      const L = this.layers[l];
      this.norm(this.xb, this.x, L.attnNorm);
      group.stepInput.set(k.f32(this.xb, dim));
      await group.step(Op.attention, l, pos, signal);
      group.sumPartials(this.xb2);
      if (L.bo) k.k.add(this.xb2, this.xb2, L.bo, dim);
      k.k.add(this.x, this.x, this.xb2, dim);

      this.norm(this.xb, this.x, L.ffnNorm);
      await group.run(l, this.xb, this.xb2, signal, this.x); // the residual travels only if the shards' predictors read it
      if (L.b2) k.k.add(this.xb2, this.xb2, L.b2, dim);
      k.k.add(this.x, this.x, this.xb2, dim);
    }
    this.norm(this.x, this.x, this.finalNorm);
    group.stepInput.set(k.f32(this.x, dim));
    await group.step(Op.logits, 0, pos, signal);
    this.logits.set(group.logits);
    return this.logits;
  }

  private norm(out: number, x: number, n: Norm): void {
    const { k, config: c } = this;
    if (c.norm === "rmsnorm") k.k.rmsnorm(out, x, n.w, c.dim, c.normEps);
    else k.k.layernorm(out, x, n.w, n.b, c.dim, c.normEps);
  }

  dispose(): void {
    for (const b of this.blocks) this.k.free(b);
    this.blocks.length = 0;
  }
}
