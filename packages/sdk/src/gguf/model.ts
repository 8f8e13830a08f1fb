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

/** Architectures whose tensors and keys follow llama.cpp's LLM_ARCH_LLAMA layout. */
export const GGUF_ARCHITECTURES = ["llama"] as const;

/** Options of {@link ggufModel}. */
export interface GgufModelOptions {
  /** Override the FFN activation (llama GGUFs do not record it: llama.cpp runs SiLU). */
  activation?: "silu" | "relu";
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
  for (let l = 0; l < nLayers; l++) for (const [c, g] of Object.entries(PER_LAYER)) want(`layers.${l}.${c}`, `blk.${l}.${g}`, shapes[c]);

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
    activation: opts.activation ?? "silu",
    gated: true,
    sharedClassifier: shared,
    norm: "rmsnorm",
  };
  const tokenizer = ggufTokenizer(file, vocabSize);
  const tensors: TensorSource = {
    config,
    has: (n) => names.has(n),
    getTensor: async (n) => {
      const t = names.get(n);
      if (!t) throw new FlashError("BAD_ARGUMENT", `GGUF model has no tensor for "${n}"`);
      return file.readF32(t);
    },
    getEncoded: async (n, dtype) => {
      const t = names.get(n);
      return t && t.type === ggmlTypeOf(dtype) ? file.readRaw(t) : undefined;
    },
  };
  const chatTemplate = m.optStr("tokenizer.chat_template");
  return { architecture: arch, config, names, tensors, tokenizer, ...(chatTemplate !== undefined ? { chatTemplate } : {}) };
}
