import { FlashError, FormatError } from "../errors.js";
import type { TensorSource } from "../convert/from-llama2c.js";
import type { ModelConfig } from "../format/types.js";
import type { GgufFile, GgufTensorInfo } from "./reader.js";
import { ggmlTypeOf } from "../format/rows.js";
import { metaReader, unsupported } from "./reader.js";
import type { GgufTokenizer } from "./tokenizer.js";
import { ggufTokenizer } from "./tokenizer.js";

/**
 * A GGUF file of architecture `llama` in flashllm's terms: the {@link ModelConfig}, the tensors under
 * the canonical names `convertTensors` takes (read and dequantized one at a time), the tokenizer and
 * the chat template.
 *
 * RoPE: llama.cpp's converter permutes HF's q/k rows back into Meta's interleaved order, and
 * LLM_ARCH_LLAMA rotates pairs (2j, 2j+1) (LLAMA_ROPE_TYPE_NORM), which is llama2.c's convention: so a
 * GGUF's q/k rows are used as stored with `ropeStyle: "interleaved"`, no permutation.
 */

/** GGUF tensor names of each canonical flashllm tensor. */
const GLOBAL: Record<string, string> = { tok_embeddings: "token_embd.weight", norm: "output_norm.weight", output: "output.weight" };
const PER_LAYER: Record<string, string> = {
  attn_norm: "attn_norm.weight",
  wq: "attn_q.weight",
  wk: "attn_k.weight",
  wv: "attn_v.weight",
  wo: "attn_output.weight",
  ffn_norm: "ffn_norm.weight",
  w1: "ffn_gate.weight",
  w2: "ffn_down.weight",
  w3: "ffn_up.weight",
};

/**
 * Architectures whose tensors and keys follow llama.cpp's LLM_ARCH_LLAMA layout. `bamboo` is PowerInfer's
 * (Bamboo-7B, TurboSparse-Mistral): the same tensors, its FFN dReLU (`LLM_FFN_SYM` + `LLM_FFN_RELU`:
 * `relu(gate·x)·relu(up·x)`).
 */
export const GGUF_ARCHITECTURES = ["llama", "bamboo"] as const;

/** Options of {@link ggufModel}. */
export interface GgufModelOptions {
  /**
   * Override the FFN activation of a `llama` file, which does not record it: llama.cpp runs SiLU, and
   * PowerInfer's sparse graph ReLU (the default here when the file carries PowerInfer predictors).
   */
  activation?: "silu" | "relu";
}

/**
 * PowerInfer's per-layer predictors as found in a GGUF (SJTU-IPADS/PowerInfer `llama.cpp`
 * `llm_build_ffn_sparse`): `idx = fc2·relu(fc1·ffn_inp)`, a neuron skipped iff `idx < sparse_threshold`.
 * `blk.N.fc1.weight` has GGUF dims `[dim, rank]` (PyTorch `[rank][dim]`, no bias), `blk.N.fc2.weight`
 * `[rank, hidden]` (`[hidden][rank]`, no bias); `ffn_inp` is the residual stream entering the FFN block,
 * before `ffn_norm`. `powerinfer.sparse_threshold` (f32) defaults to 0. This is flashllm's low-rank
 * predictor with `A = fc1`, `B = fc2`, `c = 0`, input `"residual"`, and threshold the largest f32 below
 * PowerInfer's (flashllm keeps `score > threshold`, PowerInfer `score >= threshold`).
 */
export interface GgufPredictors {
  /** Rank (fc1 rows) per layer. */
  ranks: number[];
  /** `powerinfer.sparse_threshold` as stored (0 when absent). */
  sparseThreshold: number;
  /** The flashllm threshold: the largest f32 below `sparseThreshold`. */
  threshold: number;
}

/** What {@link ggufModel} returns. */
export interface GgufModel {
  architecture: string;
  config: ModelConfig;
  /** Canonical name → the GGUF tensor it comes from. */
  names: Map<string, GgufTensorInfo>;
  tensors: TensorSource;
  tokenizer: GgufTokenizer;
  chatTemplate?: string;
  /** PowerInfer predictors, when the file carries `blk.N.fc1`/`fc2`. */
  predictors?: GgufPredictors;
  /** True when the FFN's down projection is stored transposed (`blk.N.ffn_down_t`, PowerInfer). */
  downTransposed: boolean;
}

/** Maps `file` to flashllm's model terms; throws UNSUPPORTED / BAD_HEADER / WRONG_DIMS naming the key or tensor. */
export function ggufModel(file: GgufFile, opts: GgufModelOptions = {}): GgufModel {
  const m = metaReader(file);
  const arch = m.str("general.architecture");
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(arch)) unsupported(`architecture "${arch}" is not supported (supported: ${GGUF_ARCHITECTURES.join(", ")})`, { architecture: arch });
  const k = (s: string) => `${arch}.${s}`;
  if (Array.isArray(file.get(k("feed_forward_length")))) unsupported(`${k("feed_forward_length")} differs per layer`);
  const dim = m.int(k("embedding_length"));
  const nHeads = m.int(k("attention.head_count"));
  const nKvHeads = m.int(k("attention.head_count_kv"), nHeads);
  const nLayers = m.int(k("block_count"));
  const hiddenDim = m.int(k("feed_forward_length"));
  const head = dim / nHeads;
  if (!Number.isInteger(head)) throw new FormatError("WRONG_DIMS", `GGUF: embedding_length ${dim} is not a multiple of head_count ${nHeads}`);
  if (m.has(k("rope.dimension_count")) && m.int(k("rope.dimension_count")) !== head) unsupported(`partial RoPE (rope.dimension_count ${m.int(k("rope.dimension_count"))} of head size ${head})`);
  if (m.has(k("attention.key_length")) && m.int(k("attention.key_length")) !== head) unsupported(`attention.key_length ${m.int(k("attention.key_length"))} ≠ embedding_length/head_count ${head}`);
  const scaling = m.optStr(k("rope.scaling.type"));
  if (scaling !== undefined && scaling !== "none") unsupported(`RoPE scaling "${scaling}"`, { key: k("rope.scaling.type") });
  if (m.has(k("expert_count")) && m.int(k("expert_count")) > 0) unsupported("mixture-of-experts models");

  const embd = file.expectTensor("token_embd.weight");
  const vocabSize = embd.dims[1] ?? 0;
  const names = new Map<string, GgufTensorInfo>();
  const want = (canonical: string, ggufName: string, dims: number[]) => {
    const t = file.expectTensor(ggufName);
    if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
      throw new FormatError("WRONG_DIMS", `GGUF: tensor ${ggufName} has dims [${t.dims.join(", ")}], the model needs [${dims.join(", ")}]`, { tensor: ggufName, dims: t.dims, expected: dims });
    }
    names.set(canonical, t);
  };
  const kv = (dim * nKvHeads) / nHeads;
  want("tok_embeddings", GLOBAL.tok_embeddings, [dim, vocabSize]);
  want("norm", GLOBAL.norm, [dim]);
  const shared = file.tensor(GLOBAL.output) === undefined;
  if (!shared) want("output", GLOBAL.output, [dim, vocabSize]);
  const shapes: Record<string, number[]> = {
    attn_norm: [dim], wq: [dim, dim], wk: [dim, kv], wv: [dim, kv], wo: [dim, dim], ffn_norm: [dim],
    w1: [dim, hiddenDim], w2: [hiddenDim, dim], w3: [dim, hiddenDim],
  };
  // PowerInfer stores the down projection transposed, one row per neuron (`ffn_down_t`, dims [dim, hidden]).
  const downTransposed = file.tensor("blk.0.ffn_down.weight") === undefined && file.tensor("blk.0.ffn_down_t.weight") !== undefined;
  for (let l = 0; l < nLayers; l++) {
    for (const [c, g] of Object.entries(PER_LAYER)) {
      if (c === "w2" && downTransposed) want(`layers.${l}.w2`, `blk.${l}.ffn_down_t.weight`, [dim, hiddenDim]);
      else want(`layers.${l}.${c}`, `blk.${l}.${g}`, shapes[c]);
    }
  }
  const predictors = powerInferPredictors(file, nLayers, dim, hiddenDim, m.num("powerinfer.sparse_threshold", 0));
  if (predictors) {
    for (let l = 0; l < nLayers; l++) {
      names.set(`predictor.${l}.a`, file.expectTensor(`blk.${l}.fc1.weight`));
      names.set(`predictor.${l}.b`, file.expectTensor(`blk.${l}.fc2.weight`));
    }
  }
  if (arch === "bamboo" && opts.activation !== undefined) unsupported(`an activation override for architecture "bamboo" (its FFN is dReLU)`);
  // PowerInfer's sparse graph runs llama files with predictors through ReLU (its dense fallback runs SiLU).
  const activation = arch === "bamboo" ? "drelu" : (opts.activation ?? (predictors ? "relu" : "silu"));

  const config: ModelConfig = {
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    vocabSize,
    seqLen: m.int(k("context_length"), 2048),
    normEps: m.num(k("attention.layer_norm_rms_epsilon"), 1e-5),
    ropeTheta: m.num(k("rope.freq_base"), 10000),
    ropeStyle: "interleaved",
    activation,
    gated: true,
    sharedClassifier: shared,
    norm: "rmsnorm",
  };
  const tokenizer = ggufTokenizer(file, vocabSize);
  const tensors: TensorSource = {
    config,
    has: (n) => names.has(n),
    getTensor: async (n) => {
      // the predictors' c: PowerInfer's have no bias
      if (predictors && /^predictor\.\d+\.c$/.test(n)) return new Float32Array(hiddenDim);
      const t = names.get(n);
      if (!t) throw new FlashError("BAD_ARGUMENT", `GGUF model has no tensor for "${n}"`);
      const v = await file.readF32(t);
      // ffn_down_t [hidden][dim] → the canonical w2 [dim][hidden]
      return downTransposed && /^layers\.\d+\.w2$/.test(n) ? transpose(v, hiddenDim, dim) : v;
    },
    getEncoded: async (n, dtype) => {
      const t = names.get(n);
      if (downTransposed && /^layers\.\d+\.w2$/.test(n)) return undefined;
      return t && t.type === ggmlTypeOf(dtype) ? file.readRaw(t) : undefined;
    },
    ...(predictors
      ? {
          predictor: {
            input: "residual" as const,
            layers: predictors.ranks.map((rank) => ({ rank, threshold: predictors.threshold })),
            calibration: { importedFrom: "PowerInfer GGUF (blk.N.fc1/fc2)", sparseThreshold: predictors.sparseThreshold },
          },
        }
      : {}),
  };
  const chatTemplate = m.optStr("tokenizer.chat_template");
  return { architecture: arch, config, names, tensors, tokenizer, ...(chatTemplate !== undefined ? { chatTemplate } : {}), ...(predictors ? { predictors } : {}), downTransposed };
}

/** `rows × cols` row-major → `cols × rows`. */
function transpose(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  return out;
}

/** PowerInfer's predictors of every layer (see {@link GgufPredictors}), checked; undefined when the file has none. */
function powerInferPredictors(file: GgufFile, nLayers: number, dim: number, hidden: number, sparseThreshold: number): GgufPredictors | undefined {
  const present = file.tensors.some((t) => /^blk\.\d+\.fc[12]\.weight$/.test(t.name));
  if (!present) return undefined;
  const ranks: number[] = [];
  for (let l = 0; l < nLayers; l++) {
    const fc1 = file.tensor(`blk.${l}.fc1.weight`);
    const fc2 = file.tensor(`blk.${l}.fc2.weight`);
    if (!fc1 || !fc2) throw new FormatError("BAD_HEADER", `GGUF: PowerInfer predictor of layer ${l} is incomplete (blk.${l}.fc1.weight ${fc1 ? "present" : "missing"}, blk.${l}.fc2.weight ${fc2 ? "present" : "missing"})`, { layer: l });
    const rank = fc1.dims[1] ?? 0;
    if (fc1.dims.length !== 2 || fc1.dims[0] !== dim || rank < 1 || rank > hidden) {
      throw new FormatError("WRONG_DIMS", `GGUF: tensor blk.${l}.fc1.weight has dims [${fc1.dims.join(", ")}], a predictor needs [${dim}, rank ≤ ${hidden}]`, { tensor: fc1.name, dims: fc1.dims });
    }
    if (fc2.dims.length !== 2 || fc2.dims[0] !== rank || fc2.dims[1] !== hidden) {
      throw new FormatError("WRONG_DIMS", `GGUF: tensor blk.${l}.fc2.weight has dims [${fc2.dims.join(", ")}], the predictor needs [${rank}, ${hidden}]`, { tensor: fc2.name, dims: fc2.dims });
    }
    ranks.push(rank);
  }
  if (!Number.isFinite(sparseThreshold)) throw new FormatError("BAD_HEADER", `GGUF: powerinfer.sparse_threshold is ${sparseThreshold}`, { key: "powerinfer.sparse_threshold" });
  return { ranks, sparseThreshold, threshold: f32Below(sparseThreshold) };
}

/** The largest f32 strictly below `t`: for every f32 score `s`, `s > f32Below(t)` ⇔ `s >= t`. */
export function f32Below(t: number): number {
  const f = Math.fround(t);
  if (f < t) return f; // t is not an f32 and rounded down: f is already below it
  if (f === 0) return -Math.pow(2, -149); // below ±0: the smallest negative subnormal
  const bits = new Uint32Array(new Float32Array([f]).buffer);
  bits[0] += f > 0 ? -1 : 1; // one step toward -∞ in f32's sign-magnitude encoding
  return new Float32Array(bits.buffer)[0];
}
