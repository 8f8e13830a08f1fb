import type { FlmSink } from "../format/sink.js";
import type { TensorDeclaration } from "../format/layout.js";
import type { Dtype, Manifest } from "../format/types.js";
import { FlmWriter } from "../format/writer.js";
import { FlashError } from "../errors.js";
import { kvDim } from "../model/config.js";
import type { ModelConfig } from "../model/config.js";
import type { Llama2cOptions } from "../model/llama2c.js";
import { readLlama2cCheckpoint } from "../model/llama2c.js";
import { Llama2cTokenizer } from "../tokenizer/llama2c.js";

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
}

/** A model's tensors under flashllm's canonical names (see `model/llama2c.ts`), fetched one at a time. */
export interface TensorSource {
  config: ModelConfig;
  getTensor(name: string): Promise<Float32Array> | Float32Array;
}

/**
 * Converts a llama2.c checkpoint and its tokenizer into a `.flm` container: attention, norms,
 * embeddings and head into the resident section, and each FFN neuron's gate row, up row and down
 * column into one bundle (the down column is strided in llama2.c's w2, so it is gathered here).
 */
export async function convertLlama2c(checkpoint: Uint8Array, tokenizer: Uint8Array, sink: FlmSink, opts: ConvertOptions = {}): Promise<Manifest> {
  const { config, tensors } = readLlama2cCheckpoint(checkpoint, opts);
  return convertTensors({ config, getTensor: (n) => tensors.get(n)! }, tokenizer, sink, { ...opts, provenance: { sourceFormat: "llama2.c", ...opts.provenance } });
}

/**
 * Converts a llama-architecture model given tensor by tensor (a llama2.c checkpoint, or a Hugging Face
 * safetensors checkpoint streamed through `hfTensors`), so only one layer's FFN is in memory at a time.
 */
export async function convertTensors(src: TensorSource, tokenizer: Uint8Array, sink: FlmSink, opts: ConvertOptions = {}): Promise<Manifest> {
  const config = src.config;
  if (config.norm !== "rmsnorm" || !config.gated || config.ropeStyle === "none") {
    throw new FlashError("UNSUPPORTED", `only llama-architecture models convert for now (rmsnorm, rotary, gated FFN); got norm ${config.norm}, rope ${config.ropeStyle}, gated ${config.gated}`);
  }
  Llama2cTokenizer.parse(tokenizer, config.vocabSize); // refuse a tokenizer that does not fit the model
  const { dim, hiddenDim, nLayers, vocabSize } = config;
  const kv = kvDim(config);
  const decl: TensorDeclaration[] = [{ name: "tok_embeddings", shape: [vocabSize, dim] }];
  if (!config.sharedClassifier) decl.push({ name: "output", shape: [vocabSize, dim] });
  decl.push({ name: "norm", shape: [dim] });
  for (let l = 0; l < nLayers; l++) {
    const L = `layers.${l}.`;
    decl.push(
      { name: L + "attn_norm", shape: [dim] },
      { name: L + "wq", shape: [dim, dim] },
      { name: L + "wk", shape: [kv, dim] },
      { name: L + "wv", shape: [kv, dim] },
      { name: L + "wo", shape: [dim, dim] },
      { name: L + "ffn_norm", shape: [dim] },
    );
  }
  const dtype = opts.dtype ?? "f32";
  const writer = new FlmWriter(sink, {
    architecture: "llama",
    config,
    dtype: { resident: dtype, ffn: dtype },
    tensors: decl,
    tokenizer: { kind: "llama2c", byteLength: tokenizer.byteLength },
    bundleAlignment: opts.bundleAlignment,
    provenance: { converter: "flashllm", ...opts.provenance },
  });
  const total = nLayers + 1;
  for (const t of decl) await writer.writeTensor(t.name, await src.getTensor(t.name));
  await writer.writeTokenizer(tokenizer);
  opts.onProgress?.(1, total);
  const gate = new Float32Array(dim);
  const up = new Float32Array(dim);
  const down = new Float32Array(dim);
  for (let l = 0; l < nLayers; l++) {
    const w1 = await src.getTensor(`layers.${l}.w1`);
    const w2 = await src.getTensor(`layers.${l}.w2`); // [dim][hidden]: neuron i's column is w2[·][i]
    const w3 = await src.getTensor(`layers.${l}.w3`);
    await writer.writeLayer(l, (i) => {
      gate.set(w1.subarray(i * dim, (i + 1) * dim));
      up.set(w3.subarray(i * dim, (i + 1) * dim));
      for (let d = 0; d < dim; d++) down[d] = w2[d * hiddenDim + i];
      return { gate, up, down };
    });
    opts.onProgress?.(l + 2, total);
  }
  return writer.finish();
}
