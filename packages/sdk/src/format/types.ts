/**
 * The manifest of a `.flm` file: the JSON document after the fixed header (docs/FORMAT.md §3).
 * These types are what {@link validateManifest} returns; every number in them has been checked.
 */

/** Model family: decides the forward pass (norms, positions, biases) the model package runs. */
export type Architecture = "llama" | "opt";
/**
 * Storage type of a tensor or bundle: 32-bit float; int8 with one f32 scale per row/vector (q8); IEEE
 * half (f16); ggml's Q8_0 / Q4_0 blocks of 32 values along the row (q8_0, q4_0; format/rows.ts).
 */
export type Dtype = "f32" | "q8" | "f16" | "q8_0" | "q4_0";
/** How positions enter attention: RoPE on pairs (2j, 2j+1) (llama2.c), on (j, j+h/2) (HF), or none (learned positions). */
export type RopeStyle = "interleaved" | "neox" | "none";
/**
 * FFN activation: act(gate)·up when gated, act(up) otherwise. `fatrelu`: `v` if `v > activationThreshold`
 * else 0 (ProSparse). `drelu`: gate and up both through ReLU, `relu(gate)·relu(up)` (Bamboo, TurboSparse).
 */
export type Activation = "silu" | "relu" | "gelu" | "fatrelu" | "drelu";

/** Activations whose inactive neurons give exactly zero (`h = 0`), so selection can be exact. */
export function isReluFamily(a: Activation): boolean {
  return a === "relu" || a === "fatrelu" || a === "drelu";
}
/** Which vector a sparsity predictor reads (see {@link PredictorInfo.input}). */
export type PredictorInput = "ffn" | "residual";
/** Normalisation layer type. */
export type NormKind = "rmsnorm" | "layernorm";
/** Tokenizer stored in the `tokenizer` section: llama2.c's `tokenizer.bin`, or none. */
export type TokenizerKind = "llama2c" | "chars" | "hf" | "none";

/** Model hyper-parameters. Bounds are in {@link LIMITS}. */
export interface ModelConfig {
  /** Width of the residual stream (embedding size). */
  dim: number;
  /** FFN width: the number of neurons (= bundles) per layer. */
  hiddenDim: number;
  /** Number of transformer blocks. */
  nLayers: number;
  /** Query heads; divides `dim`. */
  nHeads: number;
  /** Key/value heads (GQA); divides `nHeads`. */
  nKvHeads: number;
  /** Tokens in the vocabulary (rows of the embedding and classifier). */
  vocabSize: number;
  /** Longest context the model was trained for (KV cache length). */
  seqLen: number;
  /** Epsilon of the normalisation layers. */
  normEps: number;
  /** RoPE base frequency (ignored when `ropeStyle` is "none"). */
  ropeTheta: number;
  /** Positional encoding style. */
  ropeStyle: RopeStyle;
  /** FFN activation. */
  activation: Activation;
  /** `fatrelu` only (and required there): the threshold a value must exceed to pass. */
  activationThreshold?: number;
  /** True when the FFN has a gate projection (SwiGLU-style); bundles then carry a gate row. */
  gated: boolean;
  /** True when the classifier reuses the token embedding matrix (no separate output tensor). */
  sharedClassifier: boolean;
  /** Normalisation type. */
  norm: NormKind;
  /** Rows of the learned position embedding (OPT); absent for RoPE models. */
  maxPositions?: number;
}

/** One resident tensor. Offsets are relative to the start of the resident section. */
export interface TensorEntry {
  /** Unique name, interpreted by the model package. */
  name: string;
  /** Storage type. q8 quantizes each row (last dimension) with its own scale. */
  dtype: Dtype;
  /** Dimensions, outermost first; row-major. 1 to 4 entries, each ≥ 1. */
  shape: number[];
  /** Byte offset of the data in the resident section; multiple of 16. */
  offset: number;
  /** Byte length of the data: rows × the dtype's row bytes (format/rows.ts; q8 scales not included). */
  length: number;
  /** q8 only: byte offset of the `rows` f32 scales in the resident section; multiple of 16. */
  scaleOffset?: number;
  /**
   * Version 2, matrices only: the data is stored column-blocked (docs/FORMAT.md §3.2.1): `cols /
   * columnBlock` blocks, block `b` holding columns `[b·columnBlock, (b+1)·columnBlock)` of every row,
   * rows in order. q8 scales stay one per row. Absent: row-major. The output projection is stored so
   * with one block per attention head, so a shard reads its heads' columns as one span.
   */
  columnBlock?: number;
}

/** Where the FFN bundles are and how each one is laid out (kernel ABI, "Sparse FFN over neuron bundles"). */
export interface FfnInfo {
  /** Bytes of one bundle: 16-byte header + (gated ? 3 : 2)·dim values of the bundle dtype. */
  bundleBytes: number;
  /** Distance between consecutive bundles: bundleBytes rounded up to a power of two ≥ 16 chosen by the writer. */
  bundleStride: number;
  /** Same as `config.gated`; repeated so a reader of bundles needs only this object. */
  gated: boolean;
  /** Bundle value type; same as `dtype.ffn`. */
  dtype: Dtype;
  /** Section holding one u32 CRC-32 per bundle, layer-major (always "ffn.crc"). */
  crcSection: string;
  /** One entry per layer: the section holding its `hiddenDim` bundles in neuron order. */
  layers: { section: string }[];
}

/** The tokenizer stored in the file. */
export interface TokenizerInfo {
  /** File format of the stored bytes; "none" means the section is empty. */
  kind: TokenizerKind;
  /** Section holding the raw tokenizer file. */
  section: string;
}

/** One entry of the section table. */
export interface SectionEntry {
  /** Unique name ("resident", "tokenizer", "ffn.0", …, "ffn.crc"; others are extensions readers may ignore). */
  name: string;
  /** Absolute byte offset in the file; multiple of 4096. */
  offset: number;
  /** Byte length (without the padding that follows). */
  length: number;
  /** CRC-32 of the section's `length` bytes as exactly 8 lowercase hex digits. */
  crc32: string;
}

/** The whole manifest. */
export interface Manifest {
  /** Always "flashllm". */
  format: "flashllm";
  /** Container version; equals the header's. */
  version: number;
  /** Model family. */
  architecture: Architecture;
  /** Hyper-parameters. */
  config: ModelConfig;
  /** Storage types: `resident` for the big resident matrices (norms and biases stay f32), `ffn` for bundles. */
  dtype: { resident: Dtype; ffn: Dtype };
  /** Resident tensors, in file order. */
  tensors: TensorEntry[];
  /** FFN bundle layout. */
  ffn: FfnInfo;
  /** Tokenizer. */
  tokenizer: TokenizerInfo;
  /** Section table, in file order. */
  sections: SectionEntry[];
  /** Free-form record of where the file came from (source file, converter version, date, calibration). */
  provenance?: Record<string, unknown>;
  /** Sparsity predictors stored with the model (tensors `predictor.{l}.a|b|c` in the resident section). */
  predictor?: PredictorInfo;
  /**
   * The model's chat template (Jinja, as in Hugging Face's `tokenizer_config.json` `chat_template` or
   * GGUF's `tokenizer.chat_template`), rendered by `LanguageModel.chat`. Absent: the model has none.
   */
  chatTemplate?: string;
}

/**
 * Low-rank sparsity predictors: per layer `score = B·relu(A·x) + c` with `A [rank][dim]` (`predictor.{l}.a`),
 * `B [hidden][rank]` (`.b`), `c [hidden]` (`.c`), a neuron predicted active when `score > threshold`.
 */
export interface PredictorInfo {
  kind: "lowrank";
  /**
   * Share of truly active neurons the thresholds keep on the calibration's validation positions.
   * Absent for imported predictors whose maker does not state one (PowerInfer's).
   */
  recallTarget?: number;
  /**
   * What `x` the predictor reads: `"ffn"` (default) the FFN input, after the FFN norm; `"residual"` the
   * residual stream entering the FFN block, before its norm (PowerInfer's predictors read `ffn_inp`).
   */
  input?: PredictorInput;
  /** One entry per model layer. */
  layers: { rank: number; threshold: number }[];
  /**
   * Trained lookahead (optional; readers that do not know it ignore it): entry `l` (one per layer but
   * the last) names layer `l+1`'s active neurons from layer `l`'s FFN input, with tensors
   * `predictor.{l}.next.a` / `.next.b` / `.next.c` of the same shapes as a layer's predictor.
   */
  lookahead?: { rank: number; threshold: number }[];
  /** The `ffn.crc` section's CRC of the model the predictors were trained on: refuses a graft onto another model. */
  modelFingerprint: string;
  /** How they were made: corpus, positions, activity rule (free-form). */
  calibration?: Record<string, unknown>;
}
