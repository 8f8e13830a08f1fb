import { FlashError, throwIfAborted } from "../errors.js";
import { openFlm } from "../format/reader.js";
import type { FlmFile } from "../format/reader.js";
import { Kernels } from "../kernels/loader.js";
import { LanguageModel } from "../language-model.js";
import { Transformer } from "../model/transformer.js";
import { WeightStore } from "../model/weights.js";
import type { NeuronSelector } from "../sparsity/selector.js";
import { AllNeurons } from "../sparsity/selector.js";
import type { FlashSource } from "../source.js";
import { Llama2cTokenizer } from "../tokenizer/llama2c.js";
import type { FfnStorageLayout, FlashStrategy } from "./flash-ffn.js";
import { FlashFfn } from "./flash-ffn.js";
import type { MemoryPlan } from "./memory-plan.js";
import { planMemory } from "./memory-plan.js";

/** Options of {@link openFlashModel}. */
export interface OpenFlashOptions {
  /**
   * Hard limit on the WASM memory the model may use, in bytes: resident weights, KV cache, scratch and
   * neuron caches must fit, or opening fails with a `BudgetError` giving the numbers. Default: no limit
   * (the caches can hold every neuron).
   */
  memoryBudget?: number;
  /** How neurons reach memory: `naive`, `bundled` or `windowed` (default, the full method). */
  strategy?: FlashStrategy;
  /** Tokens a used neuron stays protected in the cache. Default 4. */
  window?: number;
  /** Evict neurons as soon as they leave the window (the paper's strict window). Default false. */
  strictWindow?: boolean;
  /** Which neurons each token needs. Default: all (dense results, read from flash). */
  selector?: NeuronSelector;
  /** Largest gap between two missing runs read to merge them, bytes. Default 32 KiB. */
  maxGapBytes?: number;
  /** KV cache positions (≤ the model's seqLen). Default: seqLen. */
  contextLength?: number;
  /** Kernels to load into (default: a fresh instance with its own memory). */
  kernels?: Kernels;
  signal?: AbortSignal;
}

/** A model whose FFN stays on storage, with its memory plan and the flash path's figures. */
export class FlashModel extends LanguageModel {
  constructor(
    base: ConstructorParameters<typeof LanguageModel>,
    /** How the budget was split. */
    readonly memoryPlan: MemoryPlan,
    /** The opened container. */
    readonly file: FlmFile,
    readonly flash: FlashFfn,
  ) {
    super(...base);
  }
}

/**
 * Opens a `.flm` model from any {@link FlashSource}: reads and checks the header, manifest, resident
 * section and tokenizer into memory, sizes the neuron caches from the budget, and leaves the FFN on
 * the source, to be read neuron by neuron as tokens need them.
 */
export async function openFlashModel(source: FlashSource, opts: OpenFlashOptions = {}): Promise<FlashModel> {
  const file = await openFlm(source, { signal: opts.signal });
  const m = file.manifest;
  const c = m.config;
  if (m.architecture !== "llama" || m.tokenizer.kind !== "llama2c") {
    throw new FlashError("UNSUPPORTED", `this engine runs llama-architecture models with a llama2.c tokenizer; the file has architecture "${m.architecture}" and tokenizer "${m.tokenizer.kind}"`);
  }
  const contextLength = Math.min(opts.contextLength ?? c.seqLen, c.seqLen);
  if (!(contextLength >= 1)) throw new FlashError("BAD_ARGUMENT", `contextLength must be ≥ 1, got ${opts.contextLength}`);
  const strategy = opts.strategy ?? "windowed";
  const layout: FfnStorageLayout = {
    dim: c.dim,
    neurons: c.hiddenDim,
    nLayers: c.nLayers,
    bundleBytes: m.ffn.bundleBytes,
    bundleStride: m.ffn.bundleStride,
    dtype: m.ffn.dtype,
    gated: m.ffn.gated,
    activation: c.activation,
    layerOffsets: Array.from({ length: c.nLayers }, (_, l) => file.ffnLayerOffset(l)),
  };
  const kernels = opts.kernels ?? (await Kernels.load());
  // Plan before allocating anything: a budget that cannot work fails before memory grows.
  const plan = planMemory(m, layout, strategy, contextLength, kernels.memoryBytes, opts.memoryBudget);

  const tokenizer = Llama2cTokenizer.parse(await file.readTokenizer({ signal: opts.signal }), c.vocabSize);
  const resident = await file.readResident({ signal: opts.signal });
  throwIfAborted(opts.signal);
  const store = new WeightStore(kernels);
  let ffn: FlashFfn | undefined;
  let transformer: Transformer | undefined;
  try {
    for (const [name, t] of resident) {
      const cols = t.shape[t.shape.length - 1];
      const rows = t.shape.length > 1 ? t.shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
      store.upload(name, t.dtype === "f32" ? t.data : { q: t.q, scales: t.scales }, rows, cols);
    }
    if (c.sharedClassifier) store.alias("output", "tok_embeddings");
    ffn = new FlashFfn(kernels, source, layout, {
      strategy,
      capacity: plan.capacity,
      window: opts.window,
      strictWindow: opts.strictWindow,
      maxGapBytes: opts.maxGapBytes,
      selector: opts.selector ?? new AllNeurons(c.hiddenDim),
    });
    transformer = new Transformer(kernels, c, store, ffn, contextLength);
  } catch (e) {
    ffn?.dispose();
    transformer?.dispose();
    store.dispose();
    throw e;
  }
  return new FlashModel([kernels, transformer, tokenizer, ffn, store], plan, file, ffn);
}
