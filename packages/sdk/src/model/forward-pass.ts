import type { ModelConfig } from "./config.js";

/**
 * One token through the model at one position, whatever runs it: a single WASM instance
 * (`Transformer`) or a coordinator driving shards in workers (`ShardedTransformer`).
 */
export interface ForwardPass {
  readonly config: ModelConfig;
  /** Positions the KV cache holds (≤ seqLen). */
  readonly contextLength: number;
  /** Runs `token` at `pos`; returns the logits (a view valid until the next call). */
  forward(token: number, pos: number, signal?: AbortSignal): Promise<Float32Array>;
  /** Frees what the pass holds (not the weights or FFN backend its owner frees). */
  dispose(): void | Promise<void>;
}
