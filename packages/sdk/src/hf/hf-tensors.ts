import { FlashError, FormatError } from "../errors.js";
import type { PredictorInfo } from "../format/types.js";
import { f32Below } from "../gguf/model.js";
import type { ModelConfig } from "../model/config.js";
import type { HfModelSpec } from "./hf-config.js";
import type { ReadTensorOptions, TensorReader } from "./safetensors.js";

/**
 * A checkpoint's tensors under flashllm's canonical names (those of model/llama2c.ts, row-major
 * `[out][in]`), read lazily. Llama q/k rows stay in HF's rotate_half order (the config says
 * `ropeStyle: "neox"`), so no tensor is rewritten: every canonical tensor is one stored tensor.
 *
 * Names: `tok_embeddings [vocab][dim]`, `norm [dim]`, `output [vocab][dim]` (the embedding itself when
 * the classifier is shared), per layer `layers.{l}.attn_norm`, `wq [dim][dim]`, `wk`/`wv [kvDim][dim]`,
 * `wo [dim][dim]`, `ffn_norm`, `w1` (gate, gated FFNs only) and `w3` (up) `[hidden][dim]`,
 * `w2` (down) `[dim][hidden]`. OPT/GPT add `pos_embeddings [maxPositions][dim]` (row p = position p:
 * OPT's two leading rows are dropped, because the `.flm` config has no offset field and GPT has none),
 * `norm_bias`, `output_bias [vocab]` (when stored), and per layer `attn_norm_bias`, `ffn_norm_bias`,
 * `bq`/`bk`/`bv` (when stored), `bo [dim]`, `b1` (up bias) `[hidden]`, `b2` (down bias) `[dim]`.
 * A Llama-shaped checkpoint that carries its own sparsity predictors (TurboSparse-Mistral's
 * `model.layers.{l}.mlp.predictor.fc1|fc2.weight`, see {@link HfTensors.predictor}) adds per layer
 * `predictor.{l}.a [rank][dim]` (fc1), `predictor.{l}.b [hidden][rank]` (fc2) and `predictor.{l}.c`
 * (zeros: no bias), as `convertTensors` stores a model's predictors.
 */
export interface HfTensors {
  readonly spec: HfModelSpec;
  readonly config: ModelConfig;
  /** Canonical names in model order (embeddings, layers, final norm, output). */
  names(): string[];
  has(name: string): boolean;
  /** Shape of a canonical tensor (as stored, checked against the config), or undefined. */
  shape(name: string): number[] | undefined;
  /** The checkpoint tensor a canonical tensor is read from, or undefined. */
  sourceName(name: string): string | undefined;
  /** Checkpoint tensors no canonical name uses (e.g. a tied `lm_head.weight`, rotary buffers). */
  unused(): string[];
  /** Reads one tensor as f32. Rejects with BAD_ARGUMENT for a name not in {@link names}. */
  getTensor(name: string, options?: ReadTensorOptions): Promise<Float32Array>;
  /** Every tensor in {@link names} order, one read at a time, for streaming conversion. */
  entries(signal?: AbortSignal): AsyncGenerator<[string, Float32Array]>;
  /**
   * The predictors the checkpoint carries (TurboSparse-Mistral's `mlp.predictor.fc1/fc2`), in the form
   * `convertTensors` stores: PowerInfer's (`score = fc2·relu(fc1·x)` on the residual stream entering the
   * FFN block, neuron kept iff `score ≥ 0`: its default threshold, as no config key carries another).
   * Undefined when it has none. See docs/sparsity.md.
   */
  readonly predictor?: Omit<PredictorInfo, "kind" | "modelFingerprint">;
}

interface Planned {
  name: string;
  /** Stored tensor name. */
  from: string;
  shape: number[];
  /** Absent in some checkpoints of the family (GPT's q/k/v biases, lm_head bias): skipped when missing. */
  optional?: boolean;
  /** Leading rows of the stored tensor that are not part of the canonical one (OPT's position offset). */
  skipRows?: number;
}

/**
 * Maps `reader`'s tensors for `spec` (from {@link mapHfConfig}). Checks up front, from the headers only,
 * that every required tensor exists (else BAD_MANIFEST naming the canonical and stored names) and has
 * the shape the config implies (else WRONG_DIMS with expected and actual shapes).
 */
export function hfTensors(reader: TensorReader, spec: HfModelSpec): HfTensors {
  const ranks = spec.family === "llama" ? predictorRanks(reader, spec) : undefined;
  const plan = spec.family === "llama" ? [...planLlama(reader, spec), ...planPredictors(reader, spec, ranks)] : spec.family === "opt" ? planOpt(reader, spec) : planGpt(spec);
  const byName = new Map<string, Planned>();
  for (const p of plan) {
    const info = reader.info(p.from);
    if (!info) {
      if (p.optional) continue;
      throw new FormatError("BAD_MANIFEST", `${spec.architecture} checkpoint: tensor "${p.from}" (flashllm "${p.name}") is missing`, {
        tensor: p.from,
        canonical: p.name,
      });
    }
    const stored = p.skipRows ? [p.shape[0] + p.skipRows, ...p.shape.slice(1)] : p.shape;
    if (info.shape.length !== stored.length || info.shape.some((d, i) => d !== stored[i])) {
      throw new FormatError(
        "WRONG_DIMS",
        `${spec.architecture} checkpoint: tensor "${p.from}" (flashllm "${p.name}") has shape ${JSON.stringify(info.shape)}, the config implies ${JSON.stringify(stored)}`,
        { tensor: p.from, canonical: p.name, expected: stored, actual: info.shape },
      );
    }
    byName.set(p.name, p);
  }
  const used = new Set([...byName.values()].map((p) => p.from));
  const getTensor = (name: string, options?: ReadTensorOptions): Promise<Float32Array> => {
    // the predictors' c: the checkpoint's have no bias
    if (ranks && /^predictor\.\d+\.c$/.test(name)) return Promise.resolve(new Float32Array(spec.config.hiddenDim));
    const p = byName.get(name);
    if (!p) return Promise.reject(new FlashError("BAD_ARGUMENT", `${spec.architecture} checkpoint has no tensor "${name}"`, { tensor: name }));
    if (!p.skipRows) return reader.readTensor(p.from, options);
    return readSkipping(reader, p, options);
  };
  return {
    spec,
    config: spec.config,
    names: () => [...byName.keys()],
    has: (name) => byName.has(name),
    shape: (name) => byName.get(name)?.shape.slice(),
    sourceName: (name) => byName.get(name)?.from,
    unused: () => reader.names().filter((n) => !used.has(n)),
    getTensor,
    async *entries(signal?: AbortSignal) {
      for (const name of byName.keys()) yield [name, await getTensor(name, { signal })];
    },
    ...(ranks
      ? {
          predictor: {
            input: "residual" as const,
            layers: ranks.map((rank) => ({ rank, threshold: PREDICTOR_THRESHOLD })),
            calibration: { importedFrom: `${spec.architecture} checkpoint (model.layers.N.mlp.predictor.fc1/fc2)`, sparseThreshold: 0 },
          },
        }
      : {}),
  };
}

/** PowerInfer keeps a neuron iff `score >= 0` by default; flashllm keeps `score > threshold`: the largest f32 below 0. */
const PREDICTOR_THRESHOLD = f32Below(0);

/** Stored names of layer `l`'s predictor (TurboSparse-Mistral; PowerInfer's `tensor_mapping.py` maps them to `blk.N.fc1/fc2`). */
function predictorNames(reader: TensorReader, l: number): { fc1: string; fc2: string } {
  const L = `${prefixOf(reader, "embed_tokens.weight", ["model.", ""])}layers.${l}.mlp.predictor.`;
  return { fc1: `${L}fc1.weight`, fc2: `${L}fc2.weight` };
}

/**
 * Each layer's predictor rank when the checkpoint carries predictors (every layer must have fc1 and
 * fc2, else BAD_MANIFEST naming the layer; a rank outside 1…hidden is WRONG_DIMS), else undefined.
 */
function predictorRanks(reader: TensorReader, spec: HfModelSpec): number[] | undefined {
  const c = spec.config;
  const present = (l: number) => {
    const n = predictorNames(reader, l);
    return { ...n, has1: reader.has(n.fc1), has2: reader.has(n.fc2) };
  };
  const all = Array.from({ length: c.nLayers }, (_, l) => present(l));
  if (!all.some((p) => p.has1 || p.has2)) return undefined;
  return all.map((p, l) => {
    if (!p.has1 || !p.has2) {
      throw new FormatError("BAD_MANIFEST", `${spec.architecture} checkpoint: the predictor of layer ${l} is incomplete (${p.fc1} ${p.has1 ? "present" : "missing"}, ${p.fc2} ${p.has2 ? "present" : "missing"})`, { layer: l, tensor: p.has1 ? p.fc2 : p.fc1 });
    }
    const rank = reader.info(p.fc1)!.shape[0] ?? 0;
    if (!(rank >= 1 && rank <= c.hiddenDim)) {
      throw new FormatError("WRONG_DIMS", `${spec.architecture} checkpoint: tensor "${p.fc1}" has shape ${JSON.stringify(reader.info(p.fc1)!.shape)}, a predictor needs [rank ≤ ${c.hiddenDim}, ${c.dim}]`, { tensor: p.fc1, actual: reader.info(p.fc1)!.shape });
    }
    return rank;
  });
}

/** The predictor tensors to read (shapes checked with the rest: fc1 `[rank][dim]`, fc2 `[hidden][rank]`). */
function planPredictors(reader: TensorReader, spec: HfModelSpec, ranks: number[] | undefined): Planned[] {
  if (!ranks) return [];
  const c = spec.config;
  return ranks.flatMap((rank, l) => {
    const n = predictorNames(reader, l);
    return [
      { name: `predictor.${l}.a`, from: n.fc1, shape: [rank, c.dim] },
      { name: `predictor.${l}.b`, from: n.fc2, shape: [c.hiddenDim, rank] },
    ];
  });
}

/** Reads `p.from` and drops its first `p.skipRows` rows (a small table: the extra copy is negligible). */
async function readSkipping(reader: TensorReader, p: Planned, options: ReadTensorOptions = {}): Promise<Float32Array> {
  const all = await reader.readTensor(p.from, { signal: options.signal });
  const rows = all.subarray(p.skipRows! * p.shape[1]);
  if (!options.target) return rows;
  if (options.target.length < rows.length) {
    throw new FlashError("BAD_ARGUMENT", `tensor "${p.name}" has ${rows.length} elements but the target holds ${options.target.length}`, {
      tensor: p.name,
      expected: rows.length,
      actual: options.target.length,
    });
  }
  const out = options.target.subarray(0, rows.length);
  out.set(rows);
  return out;
}

/** The first of `prefixes` under which `probe` exists; the first prefix when none does (the error then names it). */
function prefixOf(reader: TensorReader, probe: string, prefixes: string[]): string {
  return prefixes.find((p) => reader.has(p + probe)) ?? prefixes[0];
}

function planLlama(reader: TensorReader, spec: HfModelSpec): Planned[] {
  const c = spec.config;
  const kv = (c.dim * c.nKvHeads) / c.nHeads;
  const p = prefixOf(reader, "embed_tokens.weight", ["model.", ""]);
  const out: Planned[] = [{ name: "tok_embeddings", from: `${p}embed_tokens.weight`, shape: [c.vocabSize, c.dim] }];
  for (let l = 0; l < c.nLayers; l++) {
    const L = `${p}layers.${l}.`;
    out.push(
      { name: `layers.${l}.attn_norm`, from: `${L}input_layernorm.weight`, shape: [c.dim] },
      { name: `layers.${l}.wq`, from: `${L}self_attn.q_proj.weight`, shape: [c.dim, c.dim] },
      { name: `layers.${l}.wk`, from: `${L}self_attn.k_proj.weight`, shape: [kv, c.dim] },
      { name: `layers.${l}.wv`, from: `${L}self_attn.v_proj.weight`, shape: [kv, c.dim] },
      { name: `layers.${l}.wo`, from: `${L}self_attn.o_proj.weight`, shape: [c.dim, c.dim] },
      { name: `layers.${l}.ffn_norm`, from: `${L}post_attention_layernorm.weight`, shape: [c.dim] },
      { name: `layers.${l}.w1`, from: `${L}mlp.gate_proj.weight`, shape: [c.hiddenDim, c.dim] },
      { name: `layers.${l}.w2`, from: `${L}mlp.down_proj.weight`, shape: [c.dim, c.hiddenDim] },
      { name: `layers.${l}.w3`, from: `${L}mlp.up_proj.weight`, shape: [c.hiddenDim, c.dim] },
    );
  }
  out.push({ name: "norm", from: `${p}norm.weight`, shape: [c.dim] });
  // Tied: HF ignores a stored lm_head.weight and uses the embedding, so do the same.
  out.push({ name: "output", from: c.sharedClassifier ? `${p}embed_tokens.weight` : "lm_head.weight", shape: [c.vocabSize, c.dim] });
  return out;
}

function planOpt(reader: TensorReader, spec: HfModelSpec): Planned[] {
  const c = spec.config;
  const p = prefixOf(reader, "embed_tokens.weight", ["model.decoder.", "decoder."]);
  const out: Planned[] = [
    { name: "tok_embeddings", from: `${p}embed_tokens.weight`, shape: [c.vocabSize, c.dim] },
    { name: "pos_embeddings", from: `${p}embed_positions.weight`, shape: [c.maxPositions!, c.dim], skipRows: spec.positionOffset },
  ];
  for (let l = 0; l < c.nLayers; l++) {
    const L = `${p}layers.${l}.`;
    out.push(
      ...pair(`layers.${l}.attn_norm`, `layers.${l}.attn_norm_bias`, `${L}self_attn_layer_norm`, [c.dim]),
      ...linear(l, "wq", "bq", `${L}self_attn.q_proj`, c.dim, c.dim),
      ...linear(l, "wk", "bk", `${L}self_attn.k_proj`, c.dim, c.dim),
      ...linear(l, "wv", "bv", `${L}self_attn.v_proj`, c.dim, c.dim),
      ...linear(l, "wo", "bo", `${L}self_attn.out_proj`, c.dim, c.dim),
      ...pair(`layers.${l}.ffn_norm`, `layers.${l}.ffn_norm_bias`, `${L}final_layer_norm`, [c.dim]),
      ...linear(l, "w3", "b1", `${L}fc1`, c.hiddenDim, c.dim),
      ...linear(l, "w2", "b2", `${L}fc2`, c.dim, c.hiddenDim),
    );
  }
  out.push(...pair("norm", "norm_bias", `${p}final_layer_norm`, [c.dim]));
  out.push({ name: "output", from: c.sharedClassifier ? `${p}embed_tokens.weight` : "lm_head.weight", shape: [c.vocabSize, c.dim] });
  return out;
}

/** The `gpt-char-relu` export: names as listed in its config.json, no prefix. */
function planGpt(spec: HfModelSpec): Planned[] {
  const c = spec.config;
  const out: Planned[] = [
    { name: "tok_embeddings", from: "tok_embeddings.weight", shape: [c.vocabSize, c.dim] },
    { name: "pos_embeddings", from: "pos_embeddings.weight", shape: [c.maxPositions!, c.dim] },
  ];
  for (let l = 0; l < c.nLayers; l++) {
    const L = `layers.${l}.`;
    out.push(
      ...pair(`${L}attn_norm`, `${L}attn_norm_bias`, `${L}attn_norm`, [c.dim]),
      // The lecture model's q/k/v have no bias; accept one if a variant stores it.
      ...linear(l, "wq", "bq", `${L}attn.wq`, c.dim, c.dim, true),
      ...linear(l, "wk", "bk", `${L}attn.wk`, c.dim, c.dim, true),
      ...linear(l, "wv", "bv", `${L}attn.wv`, c.dim, c.dim, true),
      ...linear(l, "wo", "bo", `${L}attn.wo`, c.dim, c.dim),
      ...pair(`${L}ffn_norm`, `${L}ffn_norm_bias`, `${L}ffn_norm`, [c.dim]),
      ...linear(l, "w3", "b1", `${L}ffn.up`, c.hiddenDim, c.dim),
      ...linear(l, "w2", "b2", `${L}ffn.down`, c.dim, c.hiddenDim),
    );
  }
  out.push(...pair("norm", "norm_bias", "final_norm", [c.dim]));
  out.push(
    { name: "output", from: "lm_head.weight", shape: [c.vocabSize, c.dim] },
    { name: "output_bias", from: "lm_head.bias", shape: [c.vocabSize], optional: true },
  );
  return out;
}

/** `{stored}.weight` and `{stored}.bias` (LayerNorm or a head), the bias optional if `biasOptional`. */
function pair(weight: string, bias: string, stored: string, shape: number[], biasOptional = false): Planned[] {
  return [
    { name: weight, from: `${stored}.weight`, shape },
    { name: bias, from: `${stored}.bias`, shape: [shape[0]], optional: biasOptional },
  ];
}

/** A linear layer `[rows][cols]` with its bias `[rows]`. */
function linear(l: number, w: string, b: string, stored: string, rows: number, cols: number, biasOptional = false): Planned[] {
  return [
    { name: `layers.${l}.${w}`, from: `${stored}.weight`, shape: [rows, cols] },
    { name: `layers.${l}.${b}`, from: `${stored}.bias`, shape: [rows], optional: biasOptional },
  ];
}
