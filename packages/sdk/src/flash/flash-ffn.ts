import { FlashError, throwIfAborted } from "../errors.js";
import { NeuronCache } from "../cache/neuron-cache.js";
import { ReadPlanner } from "../cache/read-planner.js";
import { Act } from "../kernels/loader.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { FfnBackend } from "../model/ffn.js";
import type { NeuronSelector } from "../sparsity/selector.js";
import type { FlashSource, ReadRequest } from "../source.js";
import type { FlashStats } from "./stats.js";
import { emptyFlashStats } from "./stats.js";

/** Where a model's FFN bundles are in the source and what they hold. */
export interface FfnStorageLayout {
  dim: number;
  /** FFN neurons per layer. */
  neurons: number;
  nLayers: number;
  /** Bytes of one bundle and the distance between consecutive bundles in the file. */
  bundleBytes: number;
  bundleStride: number;
  dtype: "f32" | "q8";
  gated: boolean;
  activation: "silu" | "relu" | "gelu";
  /** Absolute offset of layer `l`'s first bundle. */
  layerOffsets: readonly number[];
}

/**
 * How neurons reach memory, the variants the paper compares (DESIGN §1, §6):
 * - `naive`: every neuron of every layer is read each token into one reused buffer;
 * - `bundled`: only the selected neurons are read, as bundles, coalesced; nothing kept between tokens;
 * - `windowed`: bundled reads into a cache that keeps recently used neurons across tokens (the full method).
 */
export type FlashStrategy = "naive" | "bundled" | "windowed";

/** Options of the flash FFN path. */
export interface FlashFfnOptions {
  strategy: FlashStrategy;
  /** Slots of the neuron cache, shared by all layers (bundles of any layer can take any slot). */
  capacity: number;
  /** Tokens a used neuron is protected from eviction (windowed). Default 4. */
  window?: number;
  /** Evict neurons as soon as they leave the window (the paper's strict window). Default false. */
  strictWindow?: boolean;
  /** Largest gap between two runs of missing neurons, in bytes, read to merge them. Default 32 KiB. */
  maxGapBytes?: number;
  /** Which neurons each token needs (naive ignores it and takes all). */
  selector: NeuronSelector;
}

/** Most slots a strategy can use: every neuron of every layer (windowed), or of one layer at a time. */
export function maxUsefulSlots(layout: FfnStorageLayout, strategy: FlashStrategy): number {
  return strategy === "windowed" ? layout.nLayers * layout.neurons : layout.neurons;
}

/** Per-layer scratch the path keeps in WASM memory (slot ids, quantized input, partial output). */
export function flashScratchBytes(layout: FfnStorageLayout): number {
  return layout.neurons * 4 + (layout.dim + 8) * 2 + 2 * 32;
}

/**
 * The FFN computed from bundles read from storage through a {@link NeuronCache}: per layer, the
 * selector names the active neurons, the cache says which are missing, the {@link ReadPlanner} turns
 * those into a few large reads straight into free slots, and `ffn_bundled` runs over the active slots.
 *
 * One cache serves every layer (neuron `i` of layer `l` is cache id `l·neurons + i`), so the budget
 * is not split in advance: busy layers take more slots, quiet ones fewer. Its clock ticks once per
 * layer evaluation, so LRU order runs across layers, and only the layer being computed is protected.
 */
export class FlashFfn implements FfnBackend {
  readonly stats: FlashStats = emptyFlashStats();
  private readonly cache: NeuronCache;
  private readonly matrix: WasmBlock;
  private readonly planner: ReadPlanner;
  private readonly slotIds: WasmBlock; // u32 [neurons]: active slots in neuron order, for the kernel
  private readonly xq: WasmBlock; // i16 scratch for q8 bundles
  private readonly active: Int32Array;
  private readonly missing: Int32Array;
  private readonly chunkIds: Int32Array;
  private readonly strategy: FlashStrategy;
  private tick = 0; // one per layer evaluation: the cache's clock

  constructor(
    private readonly k: Kernels,
    private readonly source: FlashSource,
    readonly layout: FfnStorageLayout,
    private readonly opts: FlashFfnOptions,
  ) {
    const { neurons, bundleStride, nLayers } = layout;
    this.strategy = opts.strategy;
    const ids = maxUsefulSlots(layout, this.strategy);
    const capacity = Math.min(opts.capacity, ids);
    if (!(capacity >= 1)) throw new FlashError("BUDGET_TOO_SMALL", `the neuron cache needs at least one slot of ${bundleStride} bytes`);
    // 4096-aligned so that O_DIRECT reads can land straight in the slots when the stride allows.
    const matrix = k.alloc(capacity * bundleStride, 4096);
    this.matrix = matrix;
    const windowTicks = (opts.window ?? 4) * nLayers;
    this.cache = new NeuronCache(ids, capacity, bundleStride, () => k.u8(matrix.ptr, capacity * bundleStride), windowTicks);
    const maxGap = Math.floor((opts.maxGapBytes ?? 32 * 1024) / bundleStride);
    this.planner = new ReadPlanner(neurons, maxGap);
    this.slotIds = k.alloc(neurons * 4);
    this.xq = k.alloc((layout.dim + 8) * 2);
    this.active = new Int32Array(neurons);
    this.missing = new Int32Array(neurons);
    this.chunkIds = new Int32Array(neurons);
  }

  /** Slots in the cache. */
  get capacity(): number {
    return this.cache.capacity;
  }

  beginToken(): void {
    this.stats.tokens++;
  }

  async run(layer: number, x: number, out: number, signal?: AbortSignal): Promise<void> {
    const { k, layout, stats, cache, matrix } = this;
    stats.layerRuns++;
    const tick = ++this.tick;

    const t = performance.now();
    const nActive =
      this.strategy === "naive" ? fillAll(this.active, layout.neurons) : this.opts.selector.select(layer, k.f32(x, layout.dim), this.active);
    const t2 = performance.now();
    stats.computeMs += t2 - t;
    stats.activeNeurons += nActive;
    // Cache ids: a layer's neurons follow the previous layers' (no-reuse strategies use layer-local ids).
    const idBase = this.strategy === "windowed" ? layer * layout.neurons : 0;
    if (idBase > 0) for (let i = 0; i < nActive; i++) this.active[i] += idBase;

    if (this.strategy !== "windowed") cache.clear();
    else if (this.opts.strictWindow) cache.evictOutsideWindow(tick);

    if (nActive <= cache.capacity) {
      const nMissing = this.findMissing(this.active, nActive, tick);
      stats.cacheHits += nActive - nMissing;
      if (nMissing > 0) {
        cache.makeRoom(nMissing, tick);
        stats.memoryMs += performance.now() - t2;
        await this.load(layer, idBase, this.missing, nMissing, signal);
      }
      this.compute(x, out, this.active, nActive, false);
      return;
    }
    stats.memoryMs += performance.now() - t2;
    // More active neurons than slots: stream them through the cache in chunks, accumulating the output.
    // The kernel continues the same running sum, so the result equals one pass over all of them.
    cache.clear();
    for (let start = 0; start < nActive; start += cache.capacity) {
      throwIfAborted(signal);
      const n = Math.min(cache.capacity, nActive - start);
      const chunk = this.chunkIds.subarray(0, n);
      chunk.set(this.active.subarray(start, start + n));
      cache.clear();
      const nMissing = this.findMissing(chunk, n, tick);
      await this.load(layer, idBase, this.missing, nMissing, signal);
      this.compute(x, out, chunk, n, start > 0);
    }
  }

  // Marks the active neurons used by this token and lists the ones not in the cache.
  private findMissing(active: Int32Array, nActive: number, tick: number): number {
    const cache = this.cache;
    let nMissing = 0;
    for (let i = 0; i < nActive; i++) {
      const n = active[i];
      cache.touch(n, tick);
      if (cache.slotOf(n) < 0) this.missing[nMissing++] = n;
    }
    return nMissing;
  }

  // Plans and issues the reads of `missing` straight into newly reserved slots; commits on success,
  // rolls back on failure so the cache never points at a slot whose bytes did not arrive.
  private async load(layer: number, idBase: number, missing: Int32Array, nMissing: number, signal?: AbortSignal): Promise<void> {
    const { k, layout, stats, planner, cache, matrix } = this;
    const t0 = performance.now();
    planner.plan(missing, nMissing, (n) => cache.slotOf(n) >= 0, cache.free);
    const stride = layout.bundleStride;
    const base = layout.layerOffsets[layer];
    const mem = k.u8(matrix.ptr, cache.capacity * stride);
    const requests: ReadRequest[] = [];
    let bytes = 0;
    for (let r = 0; r < planner.runCount; r++) {
      const first = planner.runs[2 * r];
      const count = planner.runs[2 * r + 1];
      const slot = cache.reserve(first, count);
      const length = count * stride;
      requests.push({ offset: base + (first - idBase) * stride, length, target: mem.subarray(slot * stride, slot * stride + length) });
      bytes += length;
    }
    const t1 = performance.now();
    stats.memoryMs += t1 - t0;
    try {
      await this.source.read(requests, signal);
    } catch (e) {
      cache.rollback();
      throw e;
    } finally {
      stats.ioMs += performance.now() - t1;
    }
    cache.commit();
    stats.neuronsLoaded += planner.slots;
    stats.gapNeurons += planner.gapNeurons;
    stats.bytesRead += bytes;
    stats.readRequests += requests.length;
  }

  // Runs the bundled FFN kernel over the active neurons' slots, in neuron order.
  private compute(x: number, out: number, active: Int32Array, nActive: number, accumulate: boolean): void {
    const { k, layout, stats, cache, matrix } = this;
    const t0 = performance.now();
    const ids = k.u32(this.slotIds.ptr, nActive);
    for (let i = 0; i < nActive; i++) ids[i] = cache.slotOf(active[i]);
    const t1 = performance.now();
    stats.memoryMs += t1 - t0;
    k.k.ffn_bundled(
      out, x, layout.dim, matrix.ptr, layout.bundleStride, this.slotIds.ptr, nActive,
      layout.dtype === "q8" ? 1 : 0, layout.gated ? 1 : 0, Act[layout.activation], this.xq.ptr, 0, accumulate ? 1 : 0,
    );
    stats.computeMs += performance.now() - t1;
  }

  dispose(): void {
    this.k.free(this.matrix);
    this.k.free(this.slotIds);
    this.k.free(this.xq);
  }
}

function fillAll(out: Int32Array, n: number): number {
  for (let i = 0; i < n; i++) out[i] = i;
  return n;
}
