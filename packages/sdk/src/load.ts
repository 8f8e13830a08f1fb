import { Kernels } from "./kernels/loader.js";
import { LanguageModel } from "./language-model.js";
import { DenseFfn } from "./model/ffn.js";
import type { Llama2cOptions } from "./model/llama2c.js";
import { readLlama2cCheckpoint } from "./model/llama2c.js";
import { Transformer } from "./model/transformer.js";
import { WeightStore } from "./model/weights.js";
import { Llama2cTokenizer } from "./tokenizer/llama2c.js";

/** Options of {@link loadLlama2c}. */
export interface LoadLlama2cOptions extends Llama2cOptions {
  /** Kernels to load into (a fresh instance, with its own memory, by default). */
  kernels?: Kernels;
  /** Positions of KV cache to allocate (default: the model's seq_len). */
  contextLength?: number;
}

/**
 * Loads a llama2.c checkpoint and tokenizer entirely into WASM memory (the dense, in-memory path: the
 * reference the flash path is compared against).
 */
export async function loadLlama2c(checkpoint: Uint8Array, tokenizer: Uint8Array, opts: LoadLlama2cOptions = {}): Promise<LanguageModel> {
  const { config, tensors } = readLlama2cCheckpoint(checkpoint, opts);
  const tok = Llama2cTokenizer.parse(tokenizer, config.vocabSize);
  const kernels = opts.kernels ?? (await Kernels.load());
  const { dim, vocabSize, nLayers } = config;
  const kv = (dim * config.nKvHeads) / config.nHeads;
  const store = new WeightStore(kernels);
  const t = (name: string) => tensors.get(name)!;
  store.upload("tok_embeddings", t("tok_embeddings"), vocabSize, dim);
  if (config.sharedClassifier) store.alias("output", "tok_embeddings");
  else store.upload("output", t("output"), vocabSize, dim);
  store.upload("norm", t("norm"), 1, dim);
  for (let l = 0; l < nLayers; l++) {
    const L = `layers.${l}.`;
    store.upload(L + "attn_norm", t(L + "attn_norm"), 1, dim);
    store.upload(L + "wq", t(L + "wq"), dim, dim);
    store.upload(L + "wk", t(L + "wk"), kv, dim);
    store.upload(L + "wv", t(L + "wv"), kv, dim);
    store.upload(L + "wo", t(L + "wo"), dim, dim);
    store.upload(L + "ffn_norm", t(L + "ffn_norm"), 1, dim);
  }
  const ffn = new DenseFfn(kernels, config, (l) => ({
    gate: t(`layers.${l}.w1`),
    down: t(`layers.${l}.w2`),
    up: t(`layers.${l}.w3`),
  }));
  const transformer = new Transformer(kernels, config, store, ffn, opts.contextLength);
  return new LanguageModel(kernels, transformer, tok, ffn, store);
}
