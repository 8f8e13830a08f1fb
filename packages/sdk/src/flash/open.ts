import { FlashError, FormatError, throwIfAborted } from "../errors.js";
import { openFlm, residentData } from "../format/reader.js";
import type { FlmFile } from "../format/reader.js";
import type { Manifest } from "../format/types.js";
import { Kernels } from "../kernels/loader.js";
import { LanguageModel } from "../language-model.js";
import { Transformer } from "../model/transformer.js";
import { WeightStore } from "../model/weights.js";
import type { NeuronSelector } from "../sparsity/selector.js";
import { AllNeurons } from "../sparsity/selector.js";
import { readPredictor } from "../sparsity/calibrate.js";
import { LowRankPredictor } from "../sparsity/predictor.js";
import type { FlashSource } from "../source.js";
import { parseTokenizer } from "../tokenizer/parse.js";
import type { FfnStorageLayout, FlashFfnOptions, FlashStrategy } from "./flash-ffn.js";
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
  /**
   * Which neurons each token needs: `"all"` (dense results, read from flash), `"predictor"` (the
   * low-rank predictors stored in the file by `flashllm calibrate`), or any {@link NeuronSelector}.
   * Default: the file's predictors when it has them, else all.
   */
  selector?: NeuronSelector | "all" | "predictor";
  /** Receives each layer's FFN input and activations (calibration, quality measurement). */
  onActivations?: FlashFfnOptions["onActivations"];
  /** Largest gap between two missing runs read to merge them, bytes. Default 32 KiB. */
  maxGapBytes?: number;
  /**
   * Check every FFN bundle read from the source against the file's per-bundle CRC-32 (`ffn.crc`)
   * before it is used. A mismatch (a storage fault that returned wrong bytes) rolls the load back,
   * so the cache keeps nothing from it, and throws a `FormatError` CHECKSUM_MISMATCH naming the layer
   * and neuron. Costs a CRC pass over the bytes read, and the table (4 bytes per neuron per layer) in
   * JS memory, outside `memoryBudget` (see `MemoryPlan.crcTableBytes`). Default false.
   */
  verifyReads?: boolean;
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
    /** The predictor in use, when the selector is the file's predictor. */
    readonly predictor?: LowRankPredictor,
  ) {
    super(...base);
  }

  override async dispose(): Promise<void> {
    await super.dispose();
    this.predictor?.dispose();
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
  if (m.tokenizer.kind === "none") throw new FlashError("UNSUPPORTED", "this file stores no tokenizer: generate needs one");
  const contextLength = Math.min(opts.contextLength ?? c.seqLen, c.seqLen);
  if (!(Number.isSafeInteger(contextLength) && contextLength >= 1)) throw new FlashError("BAD_ARGUMENT", `contextLength must be an integer ≥ 1, got ${opts.contextLength}`);
  checkModelTensors(m, contextLength);
  if (opts.window !== undefined && !(Number.isSafeInteger(opts.window) && opts.window >= 0)) {
    throw new FlashError("BAD_ARGUMENT", `window must be an integer ≥ 0, got ${opts.window}`);
  }
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
  const wantPredictor = opts.selector === "predictor" || (opts.selector === undefined && m.predictor !== undefined);
  if (wantPredictor && !m.predictor) throw new FlashError("BAD_ARGUMENT", "this file has no predictors: run `flashllm calibrate` on it first, or choose another selector");
  const kernels = opts.kernels ?? (await Kernels.load());
  // Plan before allocating anything: a budget that cannot work fails before memory grows.
  const maxRank = Math.max(1, ...(m.predictor?.layers.map((l) => l.rank) ?? [1]));
  const predictorScratch = wantPredictor ? (c.dim + maxRank + c.hiddenDim) * 4 + 3 * 48 : 0;
  const plan = planMemory(m, layout, strategy, contextLength, kernels.memoryBytes, opts.memoryBudget, predictorScratch);
  const predictorData = wantPredictor ? await readPredictor(file, opts.signal) : undefined;
  if (opts.verifyReads) plan.crcTableBytes = (await file.loadBundleCrcs({ signal: opts.signal })).byteLength;

  const tokBytes = await file.readTokenizer({ signal: opts.signal });
  const tokenizer = parseTokenizer(m.tokenizer.kind, tokBytes, c.vocabSize);
  const resident = await file.readResident({ signal: opts.signal });
  throwIfAborted(opts.signal);
  const store = new WeightStore(kernels);
  let ffn: FlashFfn | undefined;
  let transformer: Transformer | undefined;
  let predictor: LowRankPredictor | undefined;
  try {
    for (const [name, t] of resident) {
      if (name.startsWith("predictor.")) continue; // uploaded by the predictor itself, when used
      const cols = t.shape[t.shape.length - 1];
      const rows = t.shape.length > 1 ? t.shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
      store.upload(name, residentData(t), rows, cols);
    }
    if (c.sharedClassifier) store.alias("output", "tok_embeddings");
    if (predictorData) predictor = new LowRankPredictor(kernels, predictorData);
    const selector = opts.selector === undefined || typeof opts.selector === "string" ? (predictor ?? new AllNeurons(c.hiddenDim)) : opts.selector;
    ffn = new FlashFfn(kernels, source, layout, {
      strategy,
      capacity: plan.capacity,
      stagingBytes: plan.stagingBytes,
      window: opts.window,
      strictWindow: opts.strictWindow,
      maxGapBytes: opts.maxGapBytes,
      selector,
      onActivations: opts.onActivations,
      verifyBundle: opts.verifyReads ? (l, i, bytes) => file.verifyBundle(l, i, bytes) : undefined,
    });
    transformer = new Transformer(kernels, c, store, ffn, contextLength);
  } catch (e) {
    ffn?.dispose();
    transformer?.dispose();
    predictor?.dispose();
    store.dispose();
    throw e;
  }
  return new FlashModel([kernels, transformer, tokenizer, ffn, store], plan, file, ffn, predictor);
}

/**
 * Checks that the resident tensors the forward pass reads exist with the shapes it assumes (llama and
 * OPT families). The manifest validator checks the container, not the model: without this, a file
 * whose tensors disagree with its config (two names swapped, a head count that changes kvDim, a
 * position table shorter than the context) would make the kernels read and write past the ends of
 * WASM blocks, corrupting the heap.
 */
function checkModelTensors(m: Manifest, contextLength: number): void {
  const c = m.config;
  const kv = (c.dim * c.nKvHeads) / c.nHeads;
  const byName = new Map(m.tensors.map((t) => [t.name, t]));
  const check = (name: string, shape: number[], vector: boolean, required: boolean): void => {
    const t = byName.get(name);
    if (!t) {
      if (required) throw new FormatError("BAD_MANIFEST", `tensor "${name}" is missing: the forward pass needs it`, { field: "tensors", tensor: name });
      return;
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new FormatError("WRONG_DIMS", `tensor "${name}" has shape [${t.shape.join(", ")}] but the config (dim ${c.dim}, kv dim ${kv}, vocab ${c.vocabSize}) needs [${shape.join(", ")}]`, {
        field: "tensors",
        tensor: name,
        expected: shape,
        actual: [...t.shape],
      });
    }
    if (vector && t.dtype !== "f32") throw new FormatError("UNSUPPORTED", `tensor "${name}" is ${t.dtype}; norm weights and biases must be f32`, { tensor: name, actual: t.dtype });
  };
  const want = (name: string, shape: number[], vector = false) => check(name, shape, vector, true);
  const bias = (name: string, n: number) => check(name, [n], true, false);
  const layerNorm = c.norm === "layernorm";
  want("tok_embeddings", [c.vocabSize, c.dim]);
  if (!c.sharedClassifier) want("output", [c.vocabSize, c.dim]);
  bias("output_bias", c.vocabSize);
  want("norm", [c.dim], true);
  if (layerNorm) want("norm_bias", [c.dim], true);
  if (c.ropeStyle === "none") {
    // Learned positions: row `pos` is read for every position of the context.
    const t = byName.get("pos_embeddings");
    if (!t) want("pos_embeddings", [contextLength, c.dim]);
    else if (t.shape.length !== 2 || t.shape[0] < contextLength || t.shape[1] !== c.dim) want("pos_embeddings", [Math.max(contextLength, t.shape[0] ?? 0), c.dim]);
  }
  for (let l = 0; l < c.nLayers; l++) {
    const L = `layers.${l}.`;
    want(L + "attn_norm", [c.dim], true);
    want(L + "wq", [c.dim, c.dim]);
    want(L + "wk", [kv, c.dim]);
    want(L + "wv", [kv, c.dim]);
    want(L + "wo", [c.dim, c.dim]);
    want(L + "ffn_norm", [c.dim], true);
    if (layerNorm) {
      want(L + "attn_norm_bias", [c.dim], true);
      want(L + "ffn_norm_bias", [c.dim], true);
    }
    bias(L + "bq", c.dim);
    bias(L + "bk", kv);
    bias(L + "bv", kv);
    bias(L + "bo", c.dim);
    bias(L + "b2", c.dim);
  }
}
