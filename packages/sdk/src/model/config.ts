/**
 * The shape and arithmetic of a model, whatever file it came from. Field names match the `.flm`
 * manifest's `config` (docs/FORMAT.md).
 */
export interface ModelConfig {
  /** Width of the residual stream. */
  dim: number;
  /** Number of FFN neurons per layer. */
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  /** Key/value heads (grouped-query attention when fewer than `nHeads`). */
  nKvHeads: number;
  vocabSize: number;
  /** Longest context the model was trained for. */
  seqLen: number;
  /** Epsilon of the normalisation layers. */
  normEps: number;
  ropeTheta: number;
  /** `interleaved`: llama2.c pairs (2j, 2j+1); `neox`: HF rotate_half pairs (j, j+head/2); `none`: learned positions. */
  ropeStyle: "interleaved" | "neox" | "none";
  /** FFN activation: silu (SwiGLU), relu (ReLU / relufied), gelu. */
  activation: "silu" | "relu" | "gelu";
  /** Gated FFN (`down·(act(gate·x) ⊙ up·x)`) or plain (`down·act(up·x + b)`). */
  gated: boolean;
  /** The output head reuses the token embedding. */
  sharedClassifier: boolean;
  norm: "rmsnorm" | "layernorm";
  /** Learned position table size (OPT/GPT); 0 when positions are rotary. */
  maxPositions: number;
}

/** Size of one attention head. */
export function headSize(c: ModelConfig): number {
  return c.dim / c.nHeads;
}

/** Width of the key/value projections. */
export function kvDim(c: ModelConfig): number {
  return (c.dim * c.nKvHeads) / c.nHeads;
}
