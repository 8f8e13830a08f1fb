import { FlashError } from "../errors.js";
import type { FlmFile } from "../format/reader.js";
import { unpackBundle } from "../format/bundle.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { NeuronSelector } from "./selector.js";

/**
 * Exact selection for ReLU-gated models with the gate rows kept in memory: neuron i is active iff
 * `gate_i·x > 0`, so nothing is missed and nothing extra is read, at the price of keeping a third of
 * the FFN (the gate matrix, in f32) resident. The baseline a predictor is measured against.
 */
export class GateExactSelector implements NeuronSelector {
  readonly name = "exact";
  private constructor(private readonly k: Kernels, private readonly gates: WasmBlock[], private readonly dim: number, private readonly hidden: number, private readonly x: WasmBlock, private readonly s: WasmBlock) {}

  /** Reads every gate row of the file (one pass over the FFN sections) into WASM memory. */
  static async fromFile(k: Kernels, file: FlmFile, signal?: AbortSignal): Promise<GateExactSelector> {
    const m = file.manifest;
    const c = m.config;
    if (!m.ffn.gated || c.activation !== "relu") throw new FlashError("UNSUPPORTED", `exact gate selection needs a ReLU-gated FFN; this model is ${m.ffn.gated ? "gated" : "not gated"} with ${c.activation}`);
    const gates: WasmBlock[] = [];
    const layout = file.bundle;
    for (let l = 0; l < c.nLayers; l++) {
      const bytes = await file.readSection(m.ffn.layers[l].section, { signal, verify: false });
      const g = k.alloc(c.hiddenDim * c.dim * 4);
      gates.push(g);
      const view = k.f32(g.ptr, c.hiddenDim * c.dim);
      for (let i = 0; i < c.hiddenDim; i++) view.set(unpackBundle(layout, bytes, i * m.ffn.bundleStride).gate!, i * c.dim);
    }
    return new GateExactSelector(k, gates, c.dim, c.hiddenDim, k.alloc(c.dim * 4), k.alloc(c.hiddenDim * 4));
  }

  select(layer: number, x: Float32Array, out: Int32Array): number {
    const { k } = this;
    k.f32(this.x.ptr, this.dim).set(x);
    k.k.matvec_f32(this.s.ptr, this.gates[layer].ptr, this.x.ptr, this.hidden, this.dim);
    const s = k.f32(this.s.ptr, this.hidden);
    let n = 0;
    for (let i = 0; i < this.hidden; i++) if (s[i] > 0) out[n++] = i;
    return n;
  }

  /** WASM bytes held (gate rows). */
  get bytes(): number {
    return this.gates.length * this.hidden * this.dim * 4;
  }

  dispose(): void {
    for (const g of this.gates) this.k.free(g);
    this.k.free(this.x);
    this.k.free(this.s);
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
