import type { NeuronSelector } from "../sparsity/selector.js";
import type { LookaheadSelector } from "../sparsity/trace-selector.js";
import type { Range } from "./plan.js";

/**
 * A whole-model selector seen by one shard: the ids it names inside the shard's neuron range, made
 * local (minus `range.first`). Each shard runs its own copy of a deterministic selector (the
 * benchmarks' activation trace), so every shard agrees on the token's active set without messages.
 */
export class RangeSelector implements LookaheadSelector {
  readonly name: string;
  private readonly all: Int32Array;

  constructor(private readonly inner: NeuronSelector, private readonly range: Range, neurons: number) {
    this.name = inner.name;
    this.all = new Int32Array(neurons);
  }

  select(layer: number, x: Float32Array, out: Int32Array): number {
    return this.keep(this.inner.select(layer, x, this.all), out);
  }

  predictNext(layer: number, x: Float32Array, out: Int32Array): number {
    const inner = this.inner as Partial<LookaheadSelector>;
    if (typeof inner.predictNext !== "function") return 0;
    return this.keep(inner.predictNext.call(this.inner, layer, x, this.all), out);
  }

  private keep(n: number, out: Int32Array): number {
    const { first, count } = this.range;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const id = this.all[i] - first;
      if (id >= 0 && id < count) out[m++] = id;
    }
    return m;
  }
}
