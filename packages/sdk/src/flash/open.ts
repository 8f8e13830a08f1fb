import { FlashError, throwIfAborted } from "../errors.js";
import { openFlm } from "../format/reader.js";
import { checkOpen, ffnLayout } from "./open-checks.js";
import type { FlmFile } from "../format/reader.js";
import { ALLOC_BLOCK_OVERHEAD } from "../kernels/alloc-overhead.js";
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
import type { FlashFfnOptions, FlashStrategy } from "./flash-ffn.js";
import { FlashFfn } from "./flash-ffn.js";
import type { MemoryPlan } from "./memory-plan.js";
import { planMemory } from "./memory-plan.js";
import { matrixShape } from "../shard/parts.js";
import { loadParts, verifyResident } from "../shard/resident.js";
import type { ShardedFlashModel, ShardedOpenOptions } from "../shard/open-sharded.js";
import { openShardedModel } from "../shard/open-sharded.js";

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
  /**
   * Windowed only: read the next layer's neurons while this layer computes, as named by the selector's
   * `predictNext` (ignored by selectors without it). Default false with one instance (no gain measured:
   * its reads keep the device busy already); with `workers` > 1 the sharded engine's default is true.
   */
  prefetch?: FlashFfnOptions["prefetch"];
  /** `false` reads each neuron's rows as separate requests (the paper's unbundled baseline). Default true. */
  bundling?: FlashFfnOptions["bundling"];
  /** naive only: compute every neuron read (default) or only the selector's. */
  naiveComputes?: FlashFfnOptions["naiveComputes"];
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
/**
 * With `workers` > 1 and a `shardHost`, the model is cut across that many shard workers (DESIGN §8,
 * `openShardedModel`); `workers: 1` is the single-instance path above, unchanged.
 */
export async function openFlashModel(source: FlashSource, opts: OpenFlashOptions & Partial<ShardedOpenOptions> & { workers: number }): Promise<FlashModel | ShardedFlashModel>;
export async function openFlashModel(source: FlashSource, opts?: OpenFlashOptions & { workers?: 1 }): Promise<FlashModel>;
export async function openFlashModel(source: FlashSource, opts: OpenFlashOptions & Partial<ShardedOpenOptions> = {}): Promise<FlashModel | ShardedFlashModel> {
  const workers = opts.workers ?? 1;
  if (!(Number.isSafeInteger(workers) && workers >= 1)) throw new FlashError("BAD_ARGUMENT", `workers must be an integer ≥ 1, got ${opts.workers}`);
  if (workers > 1) {
    if (!opts.shardHost) throw new FlashError("BAD_ARGUMENT", `workers: ${workers} needs a shardHost to start them (node-io: openModelFile, or new NodeShardHost(path))`);
    return openShardedModel(source, { ...opts, workers, shardHost: opts.shardHost });
  }
  return openSingle(source, opts);
}

async function openSingle(source: FlashSource, opts: OpenFlashOptions): Promise<FlashModel> {
  const file = await openFlm(source, { signal: opts.signal });
  const m = file.manifest;
  const c = m.config;
  const contextLength = checkOpen(file, opts);
  const strategy = opts.strategy ?? "windowed";
  const layout = ffnLayout(file);
  const wantPredictor = opts.selector === "predictor" || (opts.selector === undefined && m.predictor !== undefined);
  if (wantPredictor && !m.predictor) throw new FlashError("BAD_ARGUMENT", "this file has no predictors: run `flashllm calibrate` on it first, or choose another selector");
  const kernels = opts.kernels ?? (await Kernels.load());
  // Plan before allocating anything: a budget that cannot work fails before memory grows.
  const maxRank = Math.max(1, ...[...(m.predictor?.layers ?? []), ...(m.predictor?.lookahead ?? [])].map((l) => l.rank));
  const predictorScratch = wantPredictor ? (c.dim + maxRank + c.hiddenDim) * 4 + 3 * ALLOC_BLOCK_OVERHEAD : 0;
  const plan = planMemory(m, layout, strategy, contextLength, kernels.memoryBytes, opts.memoryBudget, predictorScratch);
  const predictorData = wantPredictor ? await readPredictor(file, opts.signal) : undefined;
  if (opts.verifyReads) plan.crcTableBytes = (await file.loadBundleCrcs({ signal: opts.signal })).byteLength;

  const tokBytes = await file.readTokenizer({ signal: opts.signal });
  const tokenizer = parseTokenizer(m.tokenizer.kind, tokBytes, c.vocabSize);
  throwIfAborted(opts.signal);
  const store = new WeightStore(kernels);
  let ffn: FlashFfn | undefined;
  let transformer: Transformer | undefined;
  let predictor: LowRankPredictor | undefined;
  try {
    // Every tensor straight into WASM memory (no whole-section buffer), each checksummed as it lands;
    // the pieces are combined into the section's CRC (predictors are uploaded by the predictor itself).
    const parts = m.tensors.filter((t) => !t.name.startsWith("predictor.")).map((t) => {
      const all = { first: 0, count: matrixShape(t).rows };
      return { tensor: t.name, as: t.name, rows: all, crcRows: all };
    });
    const { pieces } = await loadParts(file, kernels, store, parts, { signal: opts.signal });
    await verifyResident(file, pieces, opts.signal);
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
      prefetch: opts.prefetch,
      bundling: opts.bundling,
      naiveComputes: opts.naiveComputes,
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
  const model = new FlashModel([kernels, transformer, tokenizer, ffn, store], plan, file, ffn, predictor);
  model.chatTemplate = m.chatTemplate;
  return model;
}

