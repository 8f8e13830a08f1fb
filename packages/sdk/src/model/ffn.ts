import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { ModelConfig } from "./config.js";
import type { TensorData } from "./weights.js";
import { WeightStore, matvec, transpose } from "./weights.js";

/**
 * Computes one layer's feed-forward block. The transformer does not know where FFN weights live:
 * in memory ({@link DenseFfn}) or on storage behind a neuron cache (`FlashFfn`).
 */
export interface FfnBackend {
  /** Called once per token, before layer 0, with the token's position (windowing advances here). */
  beginToken(pos: number): void;
  /**
   * Writes `FFN_layer(x)` to `out`; both point at `dim` floats in WASM memory. `residual`: the residual
   * stream entering the FFN block (before its norm), for selectors that read it (PowerInfer's predictors).
   */
  run(layer: number, x: number, out: number, signal?: AbortSignal, residual?: number): Promise<void> | void;
  /** Releases WASM memory and handles. */
  dispose(): void | Promise<void>;
}

/**
 * The whole FFN in WASM memory, computed with dense kernels: `w2·(act(w1·x) ⊙ w3·x)`. The down
 * projection is kept transposed (one row per neuron) and applied with `matvec_t_f32`, whose summation
 * order is the bundled kernel's: so the flash path, given every neuron in order, matches this bit for bit.
 */
export class DenseFfn implements FfnBackend {
  private readonly store: WeightStore;
  private readonly hb: WasmBlock;
  private readonly hb2: WasmBlock;
  private readonly xq: WasmBlock;

  constructor(
    private readonly k: Kernels,
    private readonly config: ModelConfig,
    /** Per layer: gate `[hidden][dim]`, down `[dim][hidden]` (llama2.c's w2 layout), up `[hidden][dim]`. */
    tensors: (layer: number) => { gate: Float32Array; down: Float32Array; up: Float32Array },
  ) {
    const { dim, hiddenDim: hidden } = config;
    this.store = new WeightStore(k);
    for (let l = 0; l < config.nLayers; l++) {
      const t = tensors(l);
      this.store.upload(`${l}.gate`, t.gate as TensorData, hidden, dim);
      this.store.upload(`${l}.up`, t.up, hidden, dim);
      this.store.upload(`${l}.downT`, transpose(t.down, dim, hidden), hidden, dim);
    }
    this.hb = k.alloc(hidden * 4);
    this.hb2 = k.alloc(hidden * 4);
    this.xq = k.alloc((Math.max(dim, hidden) + 8) * 2);
  }

  /** WASM bytes held by the FFN weights. */
  get weightBytes(): number {
    return this.store.bytes;
  }

  beginToken(): void {}

  run(layer: number, x: number, out: number): void {
    const { k, config } = this;
    const h = config.hiddenDim;
    const gate = this.store.get(`${layer}.gate`);
    const up = this.store.get(`${layer}.up`);
    const downT = this.store.get(`${layer}.downT`);
    matvec(k, this.hb.ptr, gate, x, this.xq.ptr);
    matvec(k, this.hb2.ptr, up, x, this.xq.ptr);
    switch (config.activation) {
      case "silu": k.k.silu(this.hb.ptr, h); break;
      case "relu": k.k.relu(this.hb.ptr, h); break;
      case "gelu": k.k.gelu(this.hb.ptr, h); break;
      case "fatrelu": k.k.fatrelu(this.hb.ptr, h, config.activationThreshold ?? 0); break;
      case "drelu": // ReLU on both: relu(gate·x)·relu(up·x)
        k.k.relu(this.hb.ptr, h);
        k.k.relu(this.hb2.ptr, h);
        break;
    }
    k.k.mul(this.hb.ptr, this.hb.ptr, this.hb2.ptr, h);
    k.k.matvec_t_f32(out, downT.ptr, this.hb.ptr, h, config.dim);
  }

  dispose(): void {
    this.store.dispose();
    this.k.free(this.hb);
    this.k.free(this.hb2);
    this.k.free(this.xq);
  }
}
