import { FormatError } from "../errors.js";
import type { FlashErrorCode } from "../errors.js";
import { LIMITS } from "../format/constants.js";
import type { ModelConfig } from "../model/config.js";

/**
 * Mapping a checkpoint's `config.json` to the engine's {@link ModelConfig}. Anything the engine would
 * silently compute differently (RoPE scaling, biases where it expects none, post-norm OPT, projected
 * embeddings) is rejected as UNSUPPORTED rather than approximated.
 */

/** Model families whose tensors {@link hfTensors} knows how to name. */
export type HfFamily = "llama" | "opt" | "gpt";

/** What a `config.json` says about a checkpoint, in flashllm's terms. */
export interface HfModelSpec {
  /** The architecture as the file names it (`architectures[0]`, or `architecture` for the GPT export). */
  architecture: string;
  /** Tensor naming family: HF Llama, HF OPT, or a character-level GPT export (`gpt-char-relu`). */
  family: HfFamily;
  /** The `.flm` manifest's `architecture`: GPT has OPT's structure (LayerNorm, learned positions, biases). */
  flmArchitecture: "llama" | "opt";
  config: ModelConfig;
  /**
   * Rows of the stored position table that precede position 0: OPT's `OPTLearnedPositionalEmbedding`
   * looks up `pos + 2`, so `embed_positions.weight` has `max_position_embeddings + 2` rows. 0 otherwise.
   * {@link hfTensors} drops these rows, so `pos_embeddings[p]` is always position p.
   */
  positionOffset: number;
}

type Json = Record<string, unknown>;
const FILE = "config.json";

/** Architectures {@link mapHfConfig} accepts. */
export const SUPPORTED_ARCHITECTURES = ["LlamaForCausalLM", "SparseLlamaForCausalLM", "MistralForCausalLM", "BambooForCausalLM", "OPTForCausalLM", "gpt-char-relu"] as const;

/**
 * Llama-shaped architectures and the FFN activation their modelling code applies on top of `hidden_act`:
 * - `SparseLlamaForCausalLM` (ProSparse-Llama-2, SparseLLM/prosparse-*): `hidden_act: "fatrelu"` with the
 *   threshold in `hidden_act_param` (0.01), as in MiniCPM's configs and modelling code;
 * - `BambooForCausalLM` (PowerInfer's Bamboo-7B and TurboSparse-Mistral): `hidden_act: "relu"`, and
 *   `BambooMLP` applies it to both projections, `act(gate·x)·act(up·x)`: dReLU. Mistral-shaped.
 */
const LLAMA_SHAPED = new Set(["LlamaForCausalLM", "SparseLlamaForCausalLM", "MistralForCausalLM", "BambooForCausalLM"]);

/**
 * Maps a parsed `config.json`. Throws FormatError: UNSUPPORTED (unknown architecture, or a feature
 * the engine does not implement, naming the field), BAD_MANIFEST (missing or mistyped field),
 * WRONG_DIMS (dimensions out of range or inconsistent, e.g. heads not dividing the width).
 */
export function mapHfConfig(json: unknown): HfModelSpec {
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("BAD_MANIFEST", `${FILE} must be a JSON object`);
  const c = json as Json;
  const archs = c.architectures;
  const architecture =
    Array.isArray(archs) && typeof archs[0] === "string" ? archs[0]
    : typeof c.architecture === "string" ? c.architecture
    : c.model_type === "llama" ? "LlamaForCausalLM"
    : c.model_type === "opt" ? "OPTForCausalLM"
    : String(c.model_type ?? "(none)");
  let spec: HfModelSpec;
  if (LLAMA_SHAPED.has(architecture)) spec = mapLlama(c, architecture);
  else if (architecture === "OPTForCausalLM") spec = mapOpt(c, architecture);
  else if (architecture === "gpt-char-relu") spec = mapGpt(c, architecture);
  else {
    throw new FormatError("UNSUPPORTED", `${FILE}: architecture "${architecture}" is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(", ")})`, {
      file: FILE,
      field: "architectures",
      actual: architecture,
      expected: SUPPORTED_ARCHITECTURES,
    });
  }
  checkDims(spec.config);
  return spec;
}

function mapLlama(c: Json, architecture: string): HfModelSpec {
  const dim = int(c, "hidden_size");
  const nHeads = int(c, "num_attention_heads");
  const headDim = c.head_dim ?? null;
  // transformers allows head_dim ≠ hidden/heads (e.g. Gemma-style wide heads); the engine derives the
  // head size from dim/nHeads, so such a model would be computed wrongly.
  if (headDim !== null && int(c, "head_dim") * nHeads !== dim) {
    unsupported("head_dim", `hidden_size/num_attention_heads = ${dim / nHeads}`, headDim);
  }
  const { activation, activationThreshold } = llamaActivation(c, architecture);
  // Scaled RoPE (linear, dynamic, llama3, yarn) changes the frequencies; computing plain RoPE would be wrong.
  if (c.rope_scaling != null) unsupported("rope_scaling", "null", c.rope_scaling);
  let ropeTheta = num(c, "rope_theta", NaN);
  const rp = c.rope_parameters; // transformers ≥ 5 moves rope_theta here
  if (Number.isNaN(ropeTheta) && typeof rp === "object" && rp !== null) {
    const p = rp as Json;
    if (p.rope_type !== undefined && p.rope_type !== "default") unsupported("rope_parameters.rope_type", '"default"', p.rope_type);
    ropeTheta = num(p, "rope_theta", 10000);
  }
  if (Number.isNaN(ropeTheta)) ropeTheta = 10000;
  if (bool(c, "attention_bias", false)) unsupported("attention_bias", "false", true);
  if (bool(c, "mlp_bias", false)) unsupported("mlp_bias", "false", true);
  let seqLen = int(c, "max_position_embeddings", 2048);
  // Mistral-shaped models attend over a sliding window; within it attention is plain causal attention,
  // so the context is capped at the window rather than computed wrongly beyond it.
  const window = c.sliding_window;
  if (typeof window === "number" && Number.isInteger(window) && window > 0 && window < seqLen) seqLen = window;
  return {
    architecture,
    family: "llama",
    flmArchitecture: "llama",
    positionOffset: 0,
    config: {
      dim,
      hiddenDim: int(c, "intermediate_size"),
      nLayers: int(c, "num_hidden_layers"),
      nHeads,
      nKvHeads: int(c, "num_key_value_heads", nHeads),
      vocabSize: int(c, "vocab_size"),
      seqLen,
      normEps: num(c, "rms_norm_eps", 1e-6),
      ropeTheta,
      // HF checkpoints keep q/k rows in rotate_half order; the engine's neox RoPE pairs (j, j+head/2).
      ropeStyle: "neox",
      activation,
      ...(activationThreshold === undefined ? {} : { activationThreshold }),
      gated: true,
      sharedClassifier: bool(c, "tie_word_embeddings", false),
      norm: "rmsnorm",
    },
  };
}

/** The FFN activation of a Llama-shaped architecture (see {@link LLAMA_SHAPED}). */
function llamaActivation(c: Json, architecture: string): { activation: ModelConfig["activation"]; activationThreshold?: number } {
  const act = str(c, "hidden_act", "silu");
  if (architecture === "BambooForCausalLM") {
    if (act !== "relu") unsupported("hidden_act", '"relu" for BambooForCausalLM (dReLU: ReLU on gate and up)', act);
    return { activation: "drelu" };
  }
  if (act === "fatrelu") {
    const t = c.hidden_act_param;
    if (typeof t !== "number" || !Number.isFinite(t) || Math.abs(t) >= LIMITS.activationThreshold) {
      fail("BAD_MANIFEST", `${FILE}: hidden_act "fatrelu" needs its threshold in hidden_act_param (a finite number), got ${show(t)}`, "hidden_act_param", t);
    }
    return { activation: "fatrelu", activationThreshold: t };
  }
  if (act === "silu" || act === "swish") return { activation: "silu" };
  if (act === "relu") return { activation: "relu" };
  return unsupported("hidden_act", '"silu", "relu" or "fatrelu"', act);
}

function mapOpt(c: Json, architecture: string): HfModelSpec {
  const dim = int(c, "hidden_size");
  // Post-norm OPT (350m) and its projected embeddings need layers the engine does not have.
  if (!bool(c, "do_layer_norm_before", true)) unsupported("do_layer_norm_before", "true", false);
  if (bool(c, "_remove_final_layer_norm", false)) unsupported("_remove_final_layer_norm", "false", true);
  const proj = c.word_embed_proj_dim ?? null;
  if (proj !== null && int(c, "word_embed_proj_dim") !== dim) unsupported("word_embed_proj_dim", `hidden_size = ${dim}`, proj);
  const act = str(c, "activation_function", "relu");
  if (act !== "relu") unsupported("activation_function", '"relu"', act);
  if (!bool(c, "enable_bias", true)) unsupported("enable_bias", "true", false);
  if (!bool(c, "layer_norm_elementwise_affine", true)) unsupported("layer_norm_elementwise_affine", "true", false);
  const nHeads = int(c, "num_attention_heads");
  const maxPositions = int(c, "max_position_embeddings", 2048);
  return {
    architecture,
    family: "opt",
    flmArchitecture: "opt",
    positionOffset: 2,
    config: {
      dim,
      hiddenDim: int(c, "ffn_dim"),
      nLayers: int(c, "num_hidden_layers"),
      nHeads,
      nKvHeads: nHeads,
      vocabSize: int(c, "vocab_size"),
      seqLen: maxPositions,
      normEps: 1e-5, // OPT's nn.LayerNorm default; its config has no eps field
      ropeTheta: 10000, // unused with ropeStyle "none"; kept > 0 so the .flm config bound holds
      ropeStyle: "none",
      activation: "relu",
      gated: false,
      // OPTForCausalLM ties lm_head to the embedding unless the config explicitly says otherwise.
      sharedClassifier: bool(c, "tie_word_embeddings", true),
      norm: "layernorm",
      maxPositions,
    },
  };
}

/**
 * The `gpt-char-relu` export (a Karpathy-lecture character-level GPT, its own config.json): fields `vocab_size`, `dim`,
 * `n_layers`, `n_heads`, `head_size`, `ffn_hidden`, `max_seq_len`, plus prose fields (`norm`,
 * `embeddings`, `attention`, `ffn`, `lm_head`) of which only the LayerNorm `eps=` is read.
 */
function mapGpt(c: Json, architecture: string): HfModelSpec {
  const dim = int(c, "dim");
  const nHeads = int(c, "n_heads");
  const headSize = int(c, "head_size");
  if (headSize * nHeads !== dim) unsupported("head_size", `dim/n_heads = ${dim / nHeads}`, headSize);
  const eps = typeof c.norm === "string" ? /eps\s*=\s*([0-9.eE+-]+)/.exec(c.norm) : null;
  const maxPositions = int(c, "max_seq_len");
  return {
    architecture,
    family: "gpt",
    flmArchitecture: "opt",
    positionOffset: 0,
    config: {
      dim,
      hiddenDim: int(c, "ffn_hidden"),
      nLayers: int(c, "n_layers"),
      nHeads,
      nKvHeads: nHeads,
      vocabSize: int(c, "vocab_size"),
      seqLen: maxPositions,
      normEps: eps ? Number(eps[1]) : 1e-5,
      ropeTheta: 10000, // unused with ropeStyle "none"
      ropeStyle: "none",
      activation: "relu",
      gated: false,
      sharedClassifier: false,
      norm: "layernorm",
      maxPositions,
    },
  };
}

/** The bounds of the `.flm` config (docs/FORMAT.md §3.1), so a mapped config can always be written. */
function checkDims(c: ModelConfig): void {
  const bound = (field: string, v: number, max: number) => {
    if (v < 1 || v > max) wrongDims(field, `1 … ${max}`, v);
  };
  bound("dim", c.dim, LIMITS.dim);
  bound("hiddenDim", c.hiddenDim, LIMITS.hiddenDim);
  bound("nLayers", c.nLayers, LIMITS.nLayers);
  bound("nHeads", c.nHeads, Math.min(c.dim, LIMITS.nHeads));
  bound("nKvHeads", c.nKvHeads, c.nHeads);
  bound("vocabSize", c.vocabSize, LIMITS.vocabSize);
  bound("seqLen", c.seqLen, LIMITS.seqLen);
  if (c.maxPositions !== undefined) bound("maxPositions", c.maxPositions, LIMITS.maxPositions);
  if (c.dim % c.nHeads !== 0) wrongDims("nHeads", `a divisor of dim ${c.dim}`, c.nHeads);
  if (c.nHeads % c.nKvHeads !== 0) wrongDims("nKvHeads", `a divisor of nHeads ${c.nHeads}`, c.nKvHeads);
  if (c.ropeStyle !== "none" && (c.dim / c.nHeads) % 2 !== 0) wrongDims("head size", "even (RoPE rotates pairs)", c.dim / c.nHeads);
  if (!(c.normEps > 0 && c.normEps < 1)) wrongDims("normEps", "in (0, 1)", c.normEps);
  if (!(c.ropeTheta > 0)) wrongDims("ropeTheta", "> 0", c.ropeTheta);
}

// Field readers. A missing field with no default, or a wrong JSON type, is BAD_MANIFEST.

function int(c: Json, key: string, def?: number): number {
  const v = c[key] ?? def;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) fail("BAD_MANIFEST", `${FILE}: field ${key} must be an integer, got ${show(c[key])}`, key, c[key]);
  return v as number;
}

function num(c: Json, key: string, def: number): number {
  const v = c[key] ?? def;
  if (typeof v !== "number") fail("BAD_MANIFEST", `${FILE}: field ${key} must be a number, got ${show(c[key])}`, key, c[key]);
  return v as number;
}

function bool(c: Json, key: string, def: boolean): boolean {
  const v = c[key] ?? def;
  if (typeof v !== "boolean") fail("BAD_MANIFEST", `${FILE}: field ${key} must be a boolean, got ${show(c[key])}`, key, c[key]);
  return v as boolean;
}

function str(c: Json, key: string, def: string): string {
  const v = c[key] ?? def;
  if (typeof v !== "string") fail("BAD_MANIFEST", `${FILE}: field ${key} must be a string, got ${show(c[key])}`, key, c[key]);
  return v as string;
}

function show(v: unknown): string {
  return v === undefined ? "nothing (missing)" : JSON.stringify(v);
}

function fail(code: FlashErrorCode, message: string, field?: string, actual?: unknown): never {
  throw new FormatError(code, message, { file: FILE, field, actual });
}

function unsupported(field: string, expected: string, actual: unknown): never {
  throw new FormatError("UNSUPPORTED", `${FILE}: ${field} is ${show(actual)}; flashllm supports only ${expected}`, { file: FILE, field, expected, actual });
}

function wrongDims(field: string, expected: string, actual: number): never {
  throw new FormatError("WRONG_DIMS", `${FILE}: ${field} must be ${expected}, got ${actual}`, { file: FILE, field, expected, actual });
}
