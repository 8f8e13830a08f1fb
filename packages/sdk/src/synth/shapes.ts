import { FlashError } from "../errors.js";
import type { ModelConfig } from "../format/types.js";
import type { Architecture } from "../format/types.js";

/**
 * Model shapes for synthetic (random-weight) `.flm` files: the exact dimensions of published models,
 * so that what a benchmark measures at their scale (I/O, memory management, the compute path) is
 * real even though their weights cannot be had here.
 */
export interface SynthShape {
  /** Preset name, with the overrides applied in brackets. */
  name: string;
  architecture: Architecture;
  config: ModelConfig;
}

const LLAMA2_7B: SynthShape = {
  name: "llama-2-7b",
  architecture: "llama",
  config: {
    dim: 4096, hiddenDim: 11008, nLayers: 32, nHeads: 32, nKvHeads: 32, vocabSize: 32000, seqLen: 4096,
    normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", activation: "silu", gated: true,
    sharedClassifier: false, norm: "rmsnorm",
  },
};

const LLAMA2_13B: SynthShape = {
  name: "llama-2-13b",
  architecture: "llama",
  config: { ...LLAMA2_7B.config, dim: 5120, hiddenDim: 13824, nLayers: 40, nHeads: 40, nKvHeads: 40 },
};

/** Llama-1-33B ("30B"): its q8 file (~33 GB) is larger than this machine's RAM. */
const LLAMA_33B: SynthShape = {
  name: "llama-33b",
  architecture: "llama",
  config: { ...LLAMA2_7B.config, dim: 6656, hiddenDim: 17920, nLayers: 60, nHeads: 52, nKvHeads: 52, seqLen: 2048 },
};

const OPT_6_7B: SynthShape = {
  name: "opt-6.7b",
  architecture: "opt",
  config: {
    dim: 4096, hiddenDim: 16384, nLayers: 32, nHeads: 32, nKvHeads: 32, vocabSize: 50272, seqLen: 2048,
    normEps: 1e-5, ropeTheta: 10000, ropeStyle: "none", activation: "relu", gated: false,
    sharedClassifier: true, norm: "layernorm", maxPositions: 2050,
  },
};

/** The shapes `flashllm synth` knows: Llama-2-7B/13B, Llama-1-33B (SwiGLU) and OPT-6.7B (ReLU, not gated). */
export const SYNTH_SHAPES: Readonly<Record<string, SynthShape>> = { "llama-2-7b": LLAMA2_7B, "llama-2-13b": LLAMA2_13B, "llama-33b": LLAMA_33B, "opt-6.7b": OPT_6_7B };

/** Overrides for a scaled-down copy of a shape (same per-layer shapes, fewer layers / a smaller vocabulary). */
export interface ShapeOverrides {
  nLayers?: number;
  vocabSize?: number;
}

/** A preset shape, optionally with fewer layers or another vocabulary size. */
export function synthShape(preset: string, o: ShapeOverrides = {}): SynthShape {
  const base = SYNTH_SHAPES[preset];
  if (!base) throw new FlashError("BAD_ARGUMENT", `unknown shape "${preset}"; known: ${Object.keys(SYNTH_SHAPES).join(", ")}`);
  const config = { ...base.config };
  const notes: string[] = [];
  if (o.nLayers !== undefined && o.nLayers !== config.nLayers) {
    config.nLayers = o.nLayers;
    notes.push(`${o.nLayers} layers`);
  }
  if (o.vocabSize !== undefined && o.vocabSize !== config.vocabSize) {
    if (o.vocabSize < 259) throw new FlashError("BAD_ARGUMENT", `vocabSize must be ≥ 259 (special and byte pieces), got ${o.vocabSize}`);
    config.vocabSize = o.vocabSize;
    notes.push(`vocab ${o.vocabSize}`);
  }
  return { name: notes.length > 0 ? `${base.name} [${notes.join(", ")}]` : base.name, architecture: base.architecture, config };
}
