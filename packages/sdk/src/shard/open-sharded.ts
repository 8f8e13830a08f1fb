import { FlashError } from "../errors.js";
import { ALLOC_BLOCK_OVERHEAD } from "../kernels/alloc-overhead.js";
import { openFlm } from "../format/reader.js";
import type { FlmFile } from "../format/reader.js";
import type { MemoryPlan } from "../flash/memory-plan.js";
import { planFromParts } from "../flash/memory-plan.js";
import type { OpenFlashOptions } from "../flash/open.js";
import { checkOpen } from "../flash/open-checks.js";
import { Kernels } from "../kernels/loader.js";
import { LanguageModel } from "../language-model.js";
import { WeightStore } from "../model/weights.js";
import type { FlashSource } from "../source.js";
import { parseTokenizer } from "../tokenizer/parse.js";
import type { TraceParams } from "../sparsity/trace-selector.js";
import { ShardGroup } from "./group.js";
import type { ShardTransport } from "./group.js";
import type { ShardHost } from "./host.js";
import { coordinatorParts, partBytes, shardParts } from "./parts.js";
import type { ShardSlice } from "./plan.js";
import { planShards } from "./plan.js";
import type { ShardFigures } from "./protocol.js";
import { loadParts, verifyResident } from "./resident.js";
import type { ShardConfig } from "./shard-engine.js";
import { ShardEngine } from "./shard-engine.js";
import { ShardedTransformer } from "./sharded-transformer.js";

/** Options of a sharded model: {@link OpenFlashOptions} plus the workers and how to start them. */
export interface ShardedOpenOptions extends OpenFlashOptions {
  /** Shard workers (≥ 2 here; 1 is the single-instance path). */
  workers: number;
  /** Starts the workers (node-io: `NodeShardHost`; web-io: Web Workers). */
  shardHost: ShardHost;
  /** Default "shared" when SharedArrayBuffer exists, else "message". */
  transport?: ShardTransport;
  /**
   * Read the next layer's neurons during this layer, per shard (needs a selector with `predictNext`).
   * Default true: each shard's reads per layer are few and latency-bound, and hiding them measured
   * 2.04x per token at the 7B shape with 2 workers and 1.58x at the 33B shape with 5
   * (docs/benchmarks.md). One instance keeps `false` (no gain measured there).
   */
  prefetch?: boolean;
  /** Benchmarks: active sets from an activation trace (every shard draws the same and keeps its range). */
  traceSelector?: TraceParams;
  /** Benchmarks: false reads each row of a neuron separately (the "windowing only" baseline). */
  bundling?: boolean;
}

/** How a sharded model's budget was split: the coordinator's part, then each shard's own plan. */
export interface ShardedMemoryPlan {
  budget: number;
  /** The coordinator's WASM memory: embeddings, norms, biases, activations. */
  coordinatorBytes: number;
  /** Per shard (each ≤ 4 GiB of WASM memory). */
  shards: MemoryPlan[];
  /** Coordinator + every shard's total. */
  totalBytes: number;
}

/** The most a wasm32 memory can hold. */
export const WASM32_MAX_BYTES = 4 * 1024 ** 3;
// Kept free in each shard's 4 GiB for the module, allocator headers and page rounding.
const SHARD_HEADROOM = 64 * 1024 ** 2;

/** A model cut across shard workers (DESIGN §8): generate as with any model; `dispose` ends the workers. */
export class ShardedFlashModel extends LanguageModel {
  constructor(
    base: ConstructorParameters<typeof LanguageModel>,
    readonly memoryPlan: ShardedMemoryPlan,
    readonly file: FlmFile,
    readonly group: ShardGroup,
    readonly slices: readonly ShardSlice[],
    /** WASM memory of each shard when it finished loading. */
    readonly shardMemoryBytes: readonly number[],
  ) {
    super(...base);
  }

  /** Number of shard workers. */
  get workers(): number {
    return this.group.size;
  }

  /** Each shard's FFN statistics and WASM memory, fetched from the workers. */
  shardFigures(): Promise<ShardFigures[]> {
    return this.group.figures();
  }
}

/**
 * Opens a `.flm` model cut across `workers` shards, each in its own worker with its own WASM memory
 * and its own handle on the file (DESIGN §8). The coordinator (this thread) reads the header,
 * manifest, tokenizer, embeddings and norms; each shard reads its own slice of the resident section
 * straight into its memory and checksums the bytes it owns; the pieces are combined into the
 * section's CRC before the model is returned.
 */
export async function openShardedModel(source: FlashSource, opts: ShardedOpenOptions): Promise<ShardedFlashModel> {
  const file = await openFlm(source, { signal: opts.signal });
  const m = file.manifest;
  const c = m.config;
  const contextLength = checkOpen(file, opts);
  if (opts.selector !== undefined && typeof opts.selector !== "string") throw new FlashError("BAD_ARGUMENT", "a sharded model takes selector \"all\" or \"predictor\": a selector object cannot cross into the shard workers");
  if (opts.onActivations) throw new FlashError("BAD_ARGUMENT", "onActivations needs the single-instance path (workers: 1)");
  const slices = planShards(c, opts.workers);
  const wantPredictor = !opts.traceSelector && (opts.selector === "predictor" || (opts.selector === undefined && m.predictor !== undefined));
  if (wantPredictor && !m.predictor) throw new FlashError("BAD_ARGUMENT", "this file has no predictors: run `flashllm calibrate` on it first, or choose another selector");
  const strategy = opts.strategy ?? "windowed";
  const kernels = opts.kernels ?? (await Kernels.load());
  const moduleBytes = kernels.memoryBytes;

  // The budget: the coordinator's part first, the rest in equal shares, each within one wasm32 memory.
  const coordParts = coordinatorParts(m);
  const coordinatorBytes = partBytes(m, coordParts) + ShardedTransformer.stateBytes(c);
  const budget = opts.memoryBudget ?? Infinity;
  const share = Math.min((budget - coordinatorBytes) / slices.length, WASM32_MAX_BYTES - moduleBytes - SHARD_HEADROOM);
  const maxRank = Math.max(1, ...(m.predictor?.layers.map((l) => l.rank) ?? [1]));
  // PowerInfer's predictors read the residual stream before the FFN norm: then (only then) it is broadcast with each FFN step.
  const residual = wantPredictor && m.predictor!.input === "residual";
  const plans = slices.map((slice) => {
    const parts = shardParts(m, slices, slice, wantPredictor);
    const predictorScratch = wantPredictor ? (c.dim + maxRank + slice.neurons.count) * 4 + 3 * ALLOC_BLOCK_OVERHEAD : 0;
    try {
      return planFromParts({ resident: partBytes(m, parts), state: ShardEngine.stateBytes(c, slice, contextLength, residual), extra: predictorScratch }, ShardEngine.layout(file, slice), strategy, contextLength, moduleBytes, share);
    } catch (e) {
      const err = e as FlashError;
      throw new FlashError(err.code ?? "BUDGET_TOO_SMALL", `shard ${slice.index} of ${slices.length} (budget share ${Math.floor(share)} bytes after the coordinator's ${coordinatorBytes}): ${err.message}`, { shard: slice.index, ...(err.details ?? {}) });
    }
  });
  const memoryPlan: ShardedMemoryPlan = { budget, coordinatorBytes, shards: plans, totalBytes: coordinatorBytes + plans.reduce((s, p) => s + p.totalBytes, 0) };
  const configs: ShardConfig[] = slices.map((_slice, s) => ({
    slices,
    index: s,
    contextLength,
    strategy,
    window: opts.window,
    strictWindow: opts.strictWindow,
    maxGapBytes: opts.maxGapBytes,
    capacity: plans[s].capacity,
    stagingBytes: plans[s].stagingBytes,
    selector: opts.traceSelector ? { trace: opts.traceSelector } : wantPredictor ? "predictor" : "all",
    prefetch: opts.prefetch ?? true,
    bundling: opts.bundling,
    verifyReads: opts.verifyReads,
  }));
  const transport = opts.transport ?? (typeof SharedArrayBuffer === "undefined" ? "message" : "shared");

  // Shards load their slices while the coordinator loads its own.
  const starting = ShardGroup.start(kernels, opts.shardHost, configs, c.dim, c.vocabSize, transport, residual);
  // A shard may fail before the coordinator's own loading is done: its rejection is handled below
  // (await starting), not reported as unhandled meanwhile (a browser worker reports it to the page).
  starting.catch(() => {});
  const store = new WeightStore(kernels);
  let group: ShardGroup | undefined;
  let transformer: ShardedTransformer | undefined;
  try {
    const own = await loadParts(file, kernels, store, coordParts, { signal: opts.signal }).catch(async (e) => {
      await starting.then((s) => s.group.dispose(), () => {});
      throw e;
    });
    const started = await starting;
    group = started.group;
    await verifyResident(file, [...own.pieces, ...started.pieces], opts.signal);
    const tokenizer = parseTokenizer(m.tokenizer.kind, await file.readTokenizer({ signal: opts.signal }), c.vocabSize);
    transformer = new ShardedTransformer(kernels, c, store, group, contextLength);
    const model = new ShardedFlashModel([kernels, transformer, tokenizer, group, store], memoryPlan, file, group, slices, started.memoryBytes);
    model.chatTemplate = m.chatTemplate; // as the single-instance path does: chat works across shards too
    return model;
  } catch (e) {
    transformer?.dispose();
    await group?.dispose();
    store.dispose();
    throw e;
  }
}
