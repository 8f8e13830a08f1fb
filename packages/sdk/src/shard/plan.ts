import { FlashError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";

/**
 * How a model is cut across K shards, Megatron-LM's tensor parallelism (DESIGN §8): each shard owns
 * a contiguous range of KV-head groups (the query heads that read them, their q/k/v rows, their KV
 * cache and the matching columns of the output projection), a contiguous range of FFN neurons (their
 * bundles, predictor rows and neuron cache), and a contiguous range of vocabulary rows of the
 * classifier. Ranges are even with the remainder spread over the first shards; a shard may own no
 * heads when the model has fewer KV heads than shards.
 */

/** `count` items starting at `first`. */
export interface Range {
  first: number;
  count: number;
}

/** What one shard owns. */
export interface ShardSlice {
  index: number;
  /** KV heads (groups). */
  kvHeads: Range;
  /** Query heads: the kvHeads' groups (nHeads/nKvHeads query heads each). */
  heads: Range;
  /** FFN neurons, the same range in every layer. */
  neurons: Range;
  /** Classifier rows (vocabulary ids). */
  vocab: Range;
}

/** Item range of part `s` of `n` items cut into `k` parts: the first `n mod k` parts get one more. */
export function evenSplit(n: number, k: number, s: number): Range {
  const base = Math.floor(n / k);
  const extra = n % k;
  return { first: s * base + Math.min(s, extra), count: base + (s < extra ? 1 : 0) };
}

/** The most shards a model supports: each needs at least one FFN neuron and one vocabulary row. */
export function maxShards(c: ModelConfig): number {
  return Math.min(c.hiddenDim, c.vocabSize, MAX_SHARDS);
}

/** More shards than this is a mistake (each is a thread with its own WASM instance). */
export const MAX_SHARDS = 64;

/** Cuts a model into `k` shards; throws BAD_ARGUMENT for a `k` the model cannot be cut into. */
export function planShards(c: ModelConfig, k: number): ShardSlice[] {
  if (!(Number.isSafeInteger(k) && k >= 1 && k <= maxShards(c))) {
    throw new FlashError("BAD_ARGUMENT", `workers must be an integer in [1, ${maxShards(c)}] for this model (FFN ${c.hiddenDim} neurons, vocabulary ${c.vocabSize}), got ${k}`, {
      workers: k,
      limit: maxShards(c),
    });
  }
  const group = c.nHeads / c.nKvHeads;
  return Array.from({ length: k }, (_, s) => {
    const kvHeads = evenSplit(c.nKvHeads, k, s);
    return {
      index: s,
      kvHeads,
      heads: { first: kvHeads.first * group, count: kvHeads.count * group },
      neurons: evenSplit(c.hiddenDim, k, s),
      vocab: evenSplit(c.vocabSize, k, s),
    };
  });
}
