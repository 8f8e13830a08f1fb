import type { FlmSink } from "../format/sink.js";
import type { FlmDeclaration, TensorDeclaration } from "../format/layout.js";
import type { Dtype, Manifest, PredictorInfo } from "../format/types.js";
import { FlmWriter } from "../format/writer.js";
import { isRowDtype } from "../format/rows.js";
import type { RowDtype } from "../format/rows.js";
import { FlashError } from "../errors.js";
import { kvDim } from "../model/config.js";
import { headMajorWo } from "../model/head-major.js";
import type { ModelConfig } from "../model/config.js";
import type { Llama2cOptions } from "../model/llama2c.js";
import { readLlama2cCheckpoint } from "../model/llama2c.js";
import { parseTokenizer } from "../tokenizer/parse.js";

/** Options of {@link convertLlama2c}. */
export interface ConvertOptions extends Llama2cOptions {
  /** Storage type of the resident matrices and the FFN bundles. Default f32. */
  dtype?: Dtype;
  /** Bundle stride alignment (power of two; 4096 lets O_DIRECT read single bundles in place). Default 16. */
  bundleAlignment?: number;
  /** Called as layers are written: `done` of `total` steps (resident tensors count as one). */
  onProgress?: (done: number, total: number) => void;
  /** Free-form provenance stored in the manifest (source file name, date). */
  provenance?: Record<string, unknown>;
  /** The model's chat template (Jinja, e.g. `chat_template` of `tokenizer_config.json`), stored in the manifest. */
  chatTemplate?: string;
  /**
   * How the output projection `wo` is stored: `"heads"` (default) head-major, so a shard reads only
   * its heads' columns (container version 2); `"rows"` row-major, a version-1 file for older readers.
   */
  woLayout?: "heads" | "rows";
}

/** A model's tensors under flashllm's canonical names (see `model/llama2c.ts`), fetched one at a time. */
export interface TensorSource {
  config: ModelConfig;
  /** Whether the model has this tensor (optional biases). Default: every name asked for exists. */
  has?(name: string): boolean;
  getTensor(name: string): Promise<Float32Array> | Float32Array;
  /**
   * The tensor's rows already encoded as `dtype` (f16/q8_0/q4_0), when the source stores it that way
   * (a GGUF's own blocks): written verbatim instead of dequantized and quantized again.
   */
  getEncoded?(name: string, dtype: RowDtype): Promise<Uint8Array | undefined>;
  /**
   * Sparsity predictors that come with the model (PowerInfer's): stored as the file's predictors, their
   * tensors `predictor.{l}.a|b|c` served by `getTensor`, the model fingerprint filled in by the writer.
   */
  predictor?: Omit<PredictorInfo, "kind" | "modelFingerprint">;
}

/** The tokenizer to store: a llama2.c `tokenizer.bin`, or a character vocabulary as a JSON array of strings. */
export interface TokenizerFile {
  kind: "llama2c" | "chars" | "hf";
  bytes: Uint8Array;
}

/**
 * Converts a llama2.c checkpoint and its tokenizer into a `.flm` container: attention, norms,
 * embeddings and head into the resident section, and each FFN neuron's gate row, up row and down
 * column into one bundle (the down column is strided in llama2.c's w2, so it is gathered here).
 */
export async function convertLlama2c(checkpoint: Uint8Array, tokenizer: Uint8Array, sink: FlmSink, opts: ConvertOptions = {}): Promise<Manifest> {
  const { config, tensors } = readLlama2cCheckpoint(checkpoint, opts);
  return convertTensors({ config, getTensor: (n) => tensors.get(n)! }, { kind: "llama2c", bytes: tokenizer }, sink, { ...opts, provenance: { sourceFormat: "llama2.c", ...opts.provenance } });
}

/**
 * The `.flm` declaration {@link convertTensors} writes for `src` (architecture, resident tensors,
 * dtypes, tokenizer): also what `flashllm inspect` plans memory with before converting anything.
 */
export function convertDeclaration(src: Pick<TensorSource, "config" | "has" | "predictor">, tokenizer: TokenizerFile, opts: ConvertOptions = {}): FlmDeclaration {
  const config = src.config;
  const llama = config.norm === "rmsnorm" && config.gated && config.ropeStyle !== "none";
  const opt = config.norm === "layernorm" && !config.gated && config.ropeStyle === "none";
  if (!llama && !opt) throw new FlashError("UNSUPPORTED", `no converter for norm ${config.norm}, rope ${config.ropeStyle}, gated ${config.gated}`);
  parseTokenizer(tokenizer.kind, tokenizer.bytes, config.vocabSize); // refuse a tokenizer that does not fit the model
  const has = (n: string) => src.has?.(n) ?? true;
  const { dim, nLayers, vocabSize } = config;
  const kv = kvDim(config);
  const decl: TensorDeclaration[] = [{ name: "tok_embeddings", shape: [vocabSize, dim] }];
  if (opt) decl.push({ name: "pos_embeddings", shape: [config.maxPositions ?? config.seqLen, dim] });
  if (!config.sharedClassifier) decl.push({ name: "output", shape: [vocabSize, dim] });
  if (opt && has("output_bias")) decl.push({ name: "output_bias", shape: [vocabSize] });
  decl.push({ name: "norm", shape: [dim] });
  if (opt) decl.push({ name: "norm_bias", shape: [dim] });
  for (let l = 0; l < nLayers; l++) {
    const L = `layers.${l}.`;
    const optional = (name: string, shape: number[]) => {
      if (opt && has(L + name)) decl.push({ name: L + name, shape });
    };
    decl.push({ name: L + "attn_norm", shape: [dim] });
    optional("attn_norm_bias", [dim]);
    decl.push({ name: L + "wq", shape: [dim, dim] }, { name: L + "wk", shape: [kv, dim] }, { name: L + "wv", shape: [kv, dim] });
    optional("bq", [dim]);
    optional("bk", [kv]);
    optional("bv", [kv]);
    decl.push({ name: L + "wo", shape: [dim, dim] });
    optional("bo", [dim]);
    decl.push({ name: L + "ffn_norm", shape: [dim] });
    optional("ffn_norm_bias", [dim]);
    optional("b2", [dim]);
  }
  const p = src.predictor;
  if (p) {
    if (p.layers.length !== nLayers) throw new FlashError("WRONG_DIMS", `the model's predictors have ${p.layers.length} layers, the model ${nLayers}`);
    p.layers.forEach(({ rank }, l) => {
      decl.push({ name: `predictor.${l}.a`, shape: [rank, dim], dtype: "f32" }, { name: `predictor.${l}.b`, shape: [config.hiddenDim, rank], dtype: "f32" }, { name: `predictor.${l}.c`, shape: [config.hiddenDim], dtype: "f32" });
    });
  }
  const dtype = opts.dtype ?? "f32";
  const declaration: FlmDeclaration = {
    architecture: llama ? "llama" : "opt",
    config,
    dtype: { resident: dtype, ffn: dtype },
    tensors: decl,
    tokenizer: { kind: tokenizer.kind, byteLength: tokenizer.bytes.byteLength },
    bundleAlignment: opts.bundleAlignment,
    provenance: { converter: "flashllm", ...opts.provenance },
    ...(opts.chatTemplate !== undefined ? { chatTemplate: opts.chatTemplate } : {}),
    // the fingerprint (the ffn.crc section's CRC) is known once the bundles are written: the writer fills it
    ...(p ? { predictor: { kind: "lowrank" as const, ...p, modelFingerprint: "00000000" }, fingerprintPredictor: true } : {}),
  };
  return opts.woLayout === "rows" ? declaration : headMajorWo(declaration);
}

/**
 * Converts a model given tensor by tensor (a llama2.c checkpoint, or a Hugging Face safetensors
 * checkpoint streamed through `hfTensors`), so only one layer's FFN is in memory at a time. Llama
 * family: gated bundles `[gate][up][down]`. OPT family: plain bundles `[up][down]` with the up bias
 * in the bundle header; the down bias stays resident.
 */
export async function convertTensors(src: TensorSource, tokenizer: TokenizerFile, sink: FlmSink, opts: ConvertOptions = {}): Promise<Manifest> {
  const config = src.config;
  const decl = convertDeclaration(src, tokenizer, opts);
  const llama = decl.architecture === "llama";
  const opt = !llama;
  const has = (n: string) => src.has?.(n) ?? true;
  const { dim, hiddenDim, nLayers } = config;
  const writer = new FlmWriter(sink, decl);
  const total = nLayers + 1;
  // Every tensor is checked for NaN/Inf on the way in: a broken checkpoint is named here, not as
  // garbage text later.
  const get = async (name: string) => assertFinite(name, await src.getTensor(name));
  for (const t of writer.plan.manifest.tensors) {
    const raw = isRowDtype(t.dtype) ? await src.getEncoded?.(t.name, t.dtype) : undefined;
    await writer.writeTensor(t.name, raw && isRowDtype(t.dtype) ? { dtype: t.dtype, raw } : await get(t.name));
  }
  await writer.writeTokenizer(tokenizer.bytes);
  opts.onProgress?.(1, total);
  const gate = new Float32Array(dim);
  const up = new Float32Array(dim);
  const down = new Float32Array(dim);
  for (let l = 0; l < nLayers; l++) {
    const w1 = llama ? await get(`layers.${l}.w1`) : undefined;
    const w2 = await get(`layers.${l}.w2`); // [dim][hidden]: neuron i's column is w2[·][i]
    const w3 = await get(`layers.${l}.w3`);
    const b1 = opt && has(`layers.${l}.b1`) ? await get(`layers.${l}.b1`) : undefined;
    await writer.writeLayer(l, (i) => {
      if (w1) gate.set(w1.subarray(i * dim, (i + 1) * dim));
      up.set(w3.subarray(i * dim, (i + 1) * dim));
      for (let d = 0; d < dim; d++) down[d] = w2[d * hiddenDim + i];
      return w1 ? { gate, up, down } : { up, down, biasUp: b1 ? b1[i] : 0 };
    });
    opts.onProgress?.(l + 2, total);
  }
  return writer.finish();
}

function assertFinite(name: string, t: Float32Array): Float32Array {
  for (let i = 0; i < t.length; i++) {
    if (!Number.isFinite(t[i])) {
      const layer = /^layers\.(\d+)\./.exec(name)?.[1];
      throw new FlashError("BAD_ARGUMENT", `tensor ${name}${layer !== undefined ? ` (layer ${layer})` : ""} holds ${t[i]} at index ${i}: the checkpoint is corrupt`, { tensor: name, index: i, layer: layer === undefined ? undefined : Number(layer) });
    }
  }
  return t;
}
