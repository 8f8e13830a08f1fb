import type { PredictorInput } from "../format/types.js";

/**
 * Decides which FFN neurons a token needs in a layer: the engine reads and computes only those.
 * The flash engine calls it with the layer's FFN input; predictors (low-rank, gate-resident) implement
 * it in the sparsity module.
 */
export interface NeuronSelector {
  /** Short name for stats lines. */
  readonly name: string;
  /**
   * The vector `select` is given: the layer's FFN input (default), or the residual stream entering
   * the FFN block before its norm (`"residual"`: PowerInfer's predictors).
   */
  readonly input?: PredictorInput;
  /**
   * Writes the ids of the neurons `layer` needs for FFN input `x` into `out`, ascending, and returns
   * how many. `out` has room for every neuron of the layer.
   */
  select(layer: number, x: Float32Array, out: Int32Array): number;
}

/** Every neuron, every time: dense computation through the flash path. */
export class AllNeurons implements NeuronSelector {
  readonly name = "all";
  constructor(private readonly neurons: number) {}
  select(_layer: number, _x: Float32Array, out: Int32Array): number {
    for (let i = 0; i < this.neurons; i++) out[i] = i;
    return this.neurons;
  }
}

/** A fixed set per layer (tests, static "hot neuron" sets). Ids are sorted on construction. */
export class FixedSelector implements NeuronSelector {
  readonly name = "fixed";
  private readonly sets: Int32Array[];
  constructor(sets: readonly (readonly number[])[]) {
    this.sets = sets.map((s) => Int32Array.from(new Set(s)).sort());
  }
  select(layer: number, _x: Float32Array, out: Int32Array): number {
    const s = this.sets[layer];
    out.set(s);
    return s.length;
  }
}
