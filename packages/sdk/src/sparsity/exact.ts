import { FlashError } from "../errors.js";
import type { FlmFile } from "../format/reader.js";
import { unpackBundle } from "../format/bundle.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { NeuronSelector } from "./selector.js";

/**
 * Exact selection for ReLU-family gated models with the deciding rows kept in memory, so nothing is
 * missed and nothing extra is read, at the price of keeping a third (dReLU: two thirds) of the FFN
 * resident in f32. The baseline a predictor is measured against. Neuron i is active iff
 * - relu: `gate_i·x > 0`;
 * - fatrelu (threshold t): `gate_i·x > t`;
 * - drelu: `gate_i·x > 0` and `up_i·x + b_i > 0` (either one at or below 0 zeroes `relu(g)·relu(u)`).
 * The dots are `matvec_f32`'s, the same as `ffn_bundled`'s on f32 bundles: the same decisions bit for bit.
 */
export class GateExactSelector implements NeuronSelector {
  readonly name = "exact";
  private constructor(
    private readonly k: Kernels,
    private readonly gates: WasmBlock[],
    /** dReLU only: the up rows, and the up biases (bundle headers) per layer. */
    private readonly ups: WasmBlock[],
    private readonly upBias: Float32Array[],
    private readonly threshold: number,
    private readonly dim: number,
    private readonly hidden: number,
    private readonly x: WasmBlock,
    private readonly s: WasmBlock,
    private readonly su: WasmBlock | undefined,
  ) {}

  /** Reads every gate row (dReLU: and up row) of the file (one pass over the FFN sections) into WASM memory. */
  static async fromFile(k: Kernels, file: FlmFile, signal?: AbortSignal): Promise<GateExactSelector> {
    const m = file.manifest;
    const c = m.config;
    const rule = c.activation;
    if (!m.ffn.gated || (rule !== "relu" && rule !== "fatrelu" && rule !== "drelu")) {
      throw new FlashError("UNSUPPORTED", `exact gate selection needs a gated FFN with relu, fatrelu or drelu; this model is ${m.ffn.gated ? "gated" : "not gated"} with ${c.activation}`);
    }
    // fatrelu's comparison runs in f32 in the kernel: compare against the same f32 threshold.
    const threshold = rule === "fatrelu" ? Math.fround(c.activationThreshold ?? 0) : 0;
    const withUp = rule === "drelu";
    const gates: WasmBlock[] = [];
    const ups: WasmBlock[] = [];
    const upBias: Float32Array[] = [];
    const layout = file.bundle;
    for (let l = 0; l < c.nLayers; l++) {
      const bytes = await file.readSection(m.ffn.layers[l].section, { signal, verify: false });
      const g = k.alloc(c.hiddenDim * c.dim * 4);
      gates.push(g);
      const u = withUp ? k.alloc(c.hiddenDim * c.dim * 4) : undefined;
      if (u) ups.push(u);
      const bias = new Float32Array(withUp ? c.hiddenDim : 0);
      upBias.push(bias);
      for (let i = 0; i < c.hiddenDim; i++) {
        const b = unpackBundle(layout, bytes, i * m.ffn.bundleStride);
        k.f32(g.ptr, c.hiddenDim * c.dim).set(b.gate!, i * c.dim);
        if (u) {
          k.f32(u.ptr, c.hiddenDim * c.dim).set(b.up, i * c.dim);
          bias[i] = b.biasUp;
        }
      }
    }
    return new GateExactSelector(k, gates, ups, upBias, threshold, c.dim, c.hiddenDim, k.alloc(c.dim * 4), k.alloc(c.hiddenDim * 4), withUp ? k.alloc(c.hiddenDim * 4) : undefined);
  }

  select(layer: number, x: Float32Array, out: Int32Array): number {
    const { k, threshold } = this;
    k.f32(this.x.ptr, this.dim).set(x);
    k.k.matvec_f32(this.s.ptr, this.gates[layer].ptr, this.x.ptr, this.hidden, this.dim);
    const s = k.f32(this.s.ptr, this.hidden);
    let n = 0;
    if (!this.su) {
      for (let i = 0; i < this.hidden; i++) if (s[i] > threshold) out[n++] = i;
      return n;
    }
    k.k.matvec_f32(this.su.ptr, this.ups[layer].ptr, this.x.ptr, this.hidden, this.dim);
    const u = k.f32(this.su.ptr, this.hidden);
    const bias = this.upBias[layer];
    for (let i = 0; i < this.hidden; i++) if (s[i] > 0 && Math.fround(u[i] + bias[i]) > 0) out[n++] = i;
    return n;
  }

  /** WASM bytes held (gate rows, and up rows for dReLU). */
  get bytes(): number {
    return (this.gates.length + this.ups.length) * this.hidden * this.dim * 4;
  }

  dispose(): void {
    for (const g of this.gates) this.k.free(g);
    for (const u of this.ups) this.k.free(u);
    this.k.free(this.x);
    this.k.free(this.s);
    if (this.su) this.k.free(this.su);
  }
}

/**
 * A static "hot neurons" set: per layer the neurons most often active on calibration text, enough of
 * them to cover `share` of all activations. Cheap, no per-token work, but blind to the input.
 */
export class HotNeuronSelector implements NeuronSelector {
  readonly name = "hot";
  private readonly sets: Int32Array[];
  constructor(counts: readonly Float64Array[], share: number) {
    this.sets = counts.map((cnt) => {
      const total = cnt.reduce((a, b) => a + b, 0);
      const order = Array.from(cnt.keys()).sort((a, b) => cnt[b] - cnt[a]);
      const chosen: number[] = [];
      let covered = 0;
      for (const i of order) {
        if (covered >= share * total || cnt[i] === 0) break;
        chosen.push(i);
        covered += cnt[i];
      }
      return Int32Array.from(chosen).sort();
    });
  }
  select(layer: number, _x: Float32Array, out: Int32Array): number {
    out.set(this.sets[layer]);
    return this.sets[layer].length;
  }
}
