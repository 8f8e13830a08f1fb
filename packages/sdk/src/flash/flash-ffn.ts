import { FlashError, throwIfAborted } from "../errors.js";
import { NeuronCache } from "../cache/neuron-cache.js";
import { ReadPlanner } from "../cache/read-planner.js";
import { Act, KernelDtype } from "../kernels/loader.js";
import { rowBytes } from "../format/rows.js";
import type { Activation, Dtype } from "../format/types.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import type { FfnBackend } from "../model/ffn.js";
import type { NeuronSelector } from "../sparsity/selector.js";
import { BUNDLE_HEADER_BYTES } from "../format/constants.js";
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
  dtype: Dtype;
  gated: boolean;
  activation: Activation;
  /** fatrelu's threshold (ignored by the other activations). */
  activationThreshold?: number;
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
  /**
   * Checks each bundle read before its slot can be used (`verifyReads` of `openFlashModel`): called
   * with the layer, the layer-local neuron and the bundle's bytes, it throws (CHECKSUM_MISMATCH) to
   * reject them; the whole load is then rolled back. Default: none, and no cost.
   */
  verifyBundle?: (layer: number, neuron: number, bytes: Uint8Array) => void;
  /**
   * Called after each layer's FFN with its input `x`, the neurons computed (ascending layer-local ids)
   * and their activations `h` (same order). For calibration and quality measurement; views are only
   * valid during the call.
   */
  onActivations?: (layer: number, x: Float32Array, neurons: Int32Array, h: Float32Array) => void;
  /**
   * Read each neuron as one bundle (default true). `false` simulates unbundled storage for the
   * paper's "windowing only" baseline: a separate request per row of each neuron (header + gate, up,
   * down), never coalesced across neurons.
   */
  bundling?: boolean;
  /**
   * Windowed only: while a layer computes, read the next layer's missing neurons that the selector's
   * `predictNext` names (Deja Vu's lookahead), so their I/O overlaps this layer's compute and the
   * next layer's attention. Default false.
   */
  prefetch?: boolean;
  /**
   * naive only: which of the neurons read are computed. `"all"` (default) is the paper's naive
   * baseline; `"selected"` computes only the selector's neurons, the second baseline that separates
   * what reading less saves from what computing less saves.
   */
  naiveComputes?: "all" | "selected";
  /**
   * Bytes of a staging buffer for reads that merge runs of missing neurons across neurons that are
   * cached or have no free slot: the whole span is read into it and only the missing bundles are
   * copied into their slots, so the number of requests does not depend on how full the cache is.
   * 0 (default) disables it; `openFlashModel` sizes it from the budget.
   */
  stagingBytes?: number;
}

/** A selector that can name the next layer's neurons early, from the current layer's FFN input. */
export interface PredictingSelector extends NeuronSelector {
  predictNext(layer: number, x: Float32Array, out: Int32Array): number;
}

/** Figures of the lookahead prefetch (zero unless `prefetch` is on). */
export interface PrefetchStats {
  /** Prefetches issued (one per layer at most). */
  issued: number;
  /** Neurons and bytes read by prefetches (also counted in `stats.neuronsLoaded` / `bytesRead`). */
  neurons: number;
  bytes: number;
  /** Wall time from issuing each prefetch to its last byte, summed, ms. */
  readMs: number;
  /** Of that, time the next layer still had to wait (counted in `stats.ioMs`), ms; the rest was hidden. */
  waitMs: number;
}

/**
 * One load: slots reserved for runs of neurons, the reads that fill them, and the staging copies to
 * do when they arrive. Everything from the first reservation to `commit` is undone as a whole on any
 * failure, so the cache never keeps a slot whose bytes did not arrive intact.
 */
interface Load {
  layer: number;
  /** Cache id of the layer's neuron 0. */
  idBase: number;
  /** What verification checks: per run (or per neuron, unbundled), its first layer-local neuron and its slots. */
  firstNeuron: number[];
  slotViews: Uint8Array[];
  /** What is read: runs into their slots, spans through the staging buffer, or rows (unbundled). */
  requests: ReadRequest[];
  /** [from, to, length] in WASM memory, staging → slots, after the read. */
  copies: number[];
  neurons: number;
  gapNeurons: number;
  bytes: number;
  stagedReads: number;
}

/** A lookahead load in flight, finished at the next run(). */
interface PendingLoad {
  load: Load;
  done: Promise<void>;
  failed: boolean;
  start: number;
  end: number;
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
  private readonly hOut: WasmBlock | undefined; // f32 [neurons]: activations, when recorded
  private readonly active: Int32Array;
  private readonly missing: Int32Array;
  private readonly chunkIds: Int32Array;
  private readonly computed: Int32Array; // naive with naiveComputes "selected": the selector's neurons
  private readonly strategy: FlashStrategy;
  private tick = 0; // one per layer evaluation: the cache's clock
  private readonly staging: WasmBlock | undefined; // span reads merged across cached neurons land here first
  /** Figures of the lookahead prefetch. */
  readonly prefetchStats: PrefetchStats = { issued: 0, neurons: 0, bytes: 0, readMs: 0, waitMs: 0 };
  private readonly predicted: Int32Array; // prefetch: layer-local ids named by predictNext
  private readonly missingNext: Int32Array; // prefetch: cache ids of those not cached
  private pending: PendingLoad | undefined; // the prefetch in flight, committed at the next run()
  private disposed = false;

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
    const staging = Math.floor((opts.stagingBytes ?? 0) / bundleStride) * bundleStride;
    this.staging = staging >= 2 * bundleStride ? k.alloc(staging, 4096) : undefined;
    this.slotIds = k.alloc(neurons * 4);
    this.xq = k.alloc((layout.dim + 8) * 2);
    this.hOut = opts.onActivations ? k.alloc(neurons * 4) : undefined;
    this.active = new Int32Array(neurons);
    this.missing = new Int32Array(neurons);
    this.chunkIds = new Int32Array(neurons);
    this.computed = new Int32Array(opts.naiveComputes === "selected" ? neurons : 0);
    this.predicted = new Int32Array(opts.prefetch ? neurons : 0);
    this.missingNext = new Int32Array(opts.prefetch ? neurons : 0);
  }

  /** Slots in the cache. */
  get capacity(): number {
    return this.cache.capacity;
  }

  beginToken(): void {
    this.stats.tokens++;
  }

  async run(layer: number, x: number, out: number, signal?: AbortSignal, residual?: number): Promise<void> {
    const { k, layout, stats, cache } = this;
    stats.layerRuns++;
    if (this.pending) await this.finishPrefetch();
    const tick = ++this.tick;

    const t = performance.now();
    const naive = this.strategy === "naive";
    // The selector reads the FFN input, or (PowerInfer's predictors) the residual stream before the FFN norm.
    const selIn = this.selectorInput(x, residual);
    const select = (into: Int32Array): number => {
      const n = this.opts.selector.select(layer, k.f32(selIn, layout.dim), into);
      checkSelection(this.opts.selector.name, layer, into, n, layout.neurons);
      return n;
    };
    // naive reads every neuron, and computes every one or (naiveComputes "selected") the selector's only.
    const nActive = naive ? fillAll(this.active, layout.neurons) : select(this.active);
    const nComputed = naive && this.opts.naiveComputes === "selected" ? select(this.computed) : -1;
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
        // Room for the missing neurons, plus (from neurons that left the window only) room for gap
        // neurons the planner may read to merge requests and for the next layers, so that the O(size)
        // eviction scan runs once every few layers rather than at every one.
        if (cache.free < 2 * nMissing) cache.makeRoom(nMissing, tick, Math.max(nMissing, cache.capacity >> 5));
        stats.memoryMs += performance.now() - t2;
        await this.load(layer, idBase, this.missing, nMissing, signal);
      }
      if (this.opts.prefetch && this.strategy === "windowed" && layer + 1 < layout.nLayers) this.startPrefetch(layer, selIn, tick, signal);
      const [ids, n] = nComputed < 0 ? [this.active, nActive] : [this.computed, nComputed];
      this.compute(x, out, ids, n, false);
      if (this.opts.onActivations) this.report(layer, x, idBase, ids, n);
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
      if (nComputed < 0) {
        this.compute(x, out, chunk, n, start > 0);
      } else {
        // Of this chunk's neurons (ids start … start+n-1 at naive's idBase 0), the selected ones.
        const from = lowerBound(this.computed, nComputed, start);
        const to = lowerBound(this.computed, nComputed, start + n);
        this.compute(x, out, this.computed.subarray(from, to), to - from, start > 0);
      }
    }
  }

  private report(layer: number, x: number, idBase: number, active: Int32Array, n: number): void {
    const ids = this.chunkIds.subarray(0, n);
    for (let i = 0; i < n; i++) ids[i] = active[i] - idBase;
    this.opts.onActivations!(layer, this.k.f32(x, this.layout.dim), ids, this.k.f32(this.hOut!.ptr, n));
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

  // Reads `missing` into newly reserved slots and commits them; on any failure (a reservation the cache
  // refuses, a read error or abort, a checksum mismatch) rolls back and rethrows.
  private async load(layer: number, idBase: number, missing: Int32Array, nMissing: number, signal?: AbortSignal): Promise<void> {
    const t0 = performance.now();
    try {
      const load = this.planLoad(layer, idBase, missing, nMissing);
      const t1 = performance.now();
      this.stats.memoryMs += t1 - t0;
      try {
        await this.source.read(load.requests, signal);
      } finally {
        this.stats.ioMs += performance.now() - t1;
      }
      this.finishLoad(load);
    } catch (e) {
      this.cache.rollback();
      throw e;
    }
  }

  // The one place loads are planned: reserves slots for the missing neurons (plus the gap neurons the
  // planner merges across) and builds the reads that fill them. Bundled: one read per run, or per span
  // of runs through the staging buffer. Unbundled (the "windowing only" baseline): one read per row of
  // each neuron, as if gate, up and down were separate matrices; nothing is coalesced.
  private planLoad(layer: number, idBase: number, missing: Int32Array, nMissing: number): Load {
    const { k, layout, planner, cache, matrix } = this;
    const stride = layout.bundleStride;
    const base = layout.layerOffsets[layer];
    const mem = k.u8(matrix.ptr, cache.capacity * stride);
    const load: Load = { layer, idBase, firstNeuron: [], slotViews: [], requests: [], copies: [], neurons: 0, gapNeurons: 0, bytes: 0, stagedReads: 0 };
    const at = (slot: number, count: number) => mem.subarray(slot * stride, (slot + count) * stride);
    if (this.opts.bundling === false) {
      const row = rowBytes(layout.dtype, layout.dim);
      const cuts = layout.gated ? [0, BUNDLE_HEADER_BYTES + row, BUNDLE_HEADER_BYTES + 2 * row, layout.bundleBytes] : [0, BUNDLE_HEADER_BYTES + row, layout.bundleBytes];
      for (let i = 0; i < nMissing; i++) {
        const slot = cache.reserve(missing[i], 1);
        const file = base + (missing[i] - idBase) * stride;
        load.firstNeuron.push(missing[i] - idBase);
        load.slotViews.push(at(slot, 1));
        for (let c = 0; c + 1 < cuts.length; c++) load.requests.push({ offset: file + cuts[c], length: cuts[c + 1] - cuts[c], target: mem.subarray(slot * stride + cuts[c], slot * stride + cuts[c + 1]) });
      }
      load.neurons = nMissing;
      load.bytes = nMissing * layout.bundleBytes;
      return load;
    }
    planner.plan(missing, nMissing, (n) => cache.slotOf(n) >= 0, cache.free);
    planner.group(this.staging ? this.staging.bytes / stride : 0);
    const runs = planner.runs;
    const slots: number[] = [];
    for (let r = 0; r < planner.runCount; r++) {
      const slot = cache.reserve(runs[2 * r], runs[2 * r + 1]);
      slots.push(slot);
      load.firstNeuron.push(runs[2 * r] - idBase);
      load.slotViews.push(at(slot, runs[2 * r + 1]));
    }
    let staged = 0; // bytes of the staging buffer taken
    for (let g = 0; g < planner.spanCount; g++) {
      const r = planner.spans[2 * g];
      const s = planner.spans[2 * g + 1];
      const start = runs[2 * r];
      const length = (runs[2 * s] + runs[2 * s + 1] - start) * stride;
      const offset = base + (start - idBase) * stride;
      if (r === s) {
        load.requests.push({ offset, length, target: load.slotViews[r] }); // straight into its slots
      } else {
        const from = this.staging!.ptr + staged;
        load.requests.push({ offset, length, target: k.u8(from, length) });
        for (let q = r; q <= s; q++) load.copies.push(from + (runs[2 * q] - start) * stride, matrix.ptr + slots[q] * stride, runs[2 * q + 1] * stride);
        staged += length;
        load.stagedReads++;
      }
      load.bytes += length;
    }
    load.neurons = planner.slots;
    load.gapNeurons = planner.gapNeurons;
    return load;
  }

  // After the reads: staging copies, verification (verifyReads), commit, figures. Throws (without
  // committing) when a bundle fails its check; the caller rolls back.
  private finishLoad(load: Load): void {
    const { k, stats, cache, layout } = this;
    const t0 = performance.now();
    if (load.copies.length > 0) {
      const all = k.u8(0, k.memoryBytes);
      const c = load.copies;
      for (let i = 0; i < c.length; i += 3) all.copyWithin(c[i + 1], c[i], c[i] + c[i + 2]);
    }
    const check = this.opts.verifyBundle;
    if (check) {
      const { bundleStride: stride, bundleBytes } = layout;
      for (let r = 0; r < load.slotViews.length; r++) {
        const view = load.slotViews[r];
        for (let i = 0; i * stride < view.byteLength; i++) check(load.layer, load.firstNeuron[r] + i, view.subarray(i * stride, i * stride + bundleBytes));
      }
    }
    cache.commit();
    stats.neuronsLoaded += load.neurons;
    stats.gapNeurons += load.gapNeurons;
    stats.bytesRead += load.bytes;
    stats.readRequests += load.requests.length;
    stats.stagedReads += load.stagedReads;
    stats.memoryMs += performance.now() - t0;
  }

  /** The pointer the selector reads: `x`, or `residual` when the selector asks for the residual stream. */
  private selectorInput(x: number, residual: number | undefined): number {
    if (this.opts.selector.input !== "residual") return x;
    if (residual === undefined) {
      throw new FlashError("UNSUPPORTED", `selector "${this.opts.selector.name}" reads the residual stream before the FFN norm, which this caller of the FFN does not pass`);
    }
    return residual;
  }

  // Lookahead: names layer+1's neurons from this layer's input, protects them, makes room and starts
  // reading the missing ones into reserved slots. The next run() waits for and commits them first.
  private startPrefetch(layer: number, x: number, tick: number, signal?: AbortSignal): void {
    const selector = this.opts.selector as Partial<PredictingSelector>;
    if (typeof selector.predictNext !== "function") return;
    const { k, layout, stats, cache } = this;
    const t0 = performance.now();
    const n = selector.predictNext(layer, k.f32(x, layout.dim), this.predicted);
    checkSelection(`${this.opts.selector.name}.predictNext`, layer + 1, this.predicted, n, layout.neurons);
    const t1 = performance.now();
    stats.computeMs += t1 - t0;
    const idBase = (layer + 1) * layout.neurons;
    let m = 0;
    for (let i = 0; i < n; i++) {
      const id = this.predicted[i] + idBase;
      cache.touch(id, tick); // protected like this layer's neurons: makeRoom must not take them
      if (cache.slotOf(id) < 0) this.missingNext[m++] = id;
    }
    // As for on-demand loads: free extra room from outside the window, so the O(size) scan runs once every
    // few layers and not at every prefetch.
    if (cache.free < 2 * m) cache.makeRoom(m, tick, Math.max(m, cache.capacity >> 5));
    m = Math.min(m, cache.free); // what does not fit is read on demand
    let load: Load;
    try {
      if (m === 0) return;
      load = this.planLoad(layer + 1, idBase, this.missingNext, m);
    } catch {
      cache.rollback(); // the next layer reads on demand, which reports a persistent problem
      return;
    } finally {
      stats.memoryMs += performance.now() - t1;
    }
    const p: PendingLoad = { load, done: Promise.resolve(), failed: false, start: performance.now(), end: 0 };
    p.done = this.source.read(load.requests, signal).then(
      () => void (p.end = performance.now()),
      () => void ((p.end = performance.now()), (p.failed = true)),
    );
    this.pending = p;
    this.prefetchStats.issued++;
  }

  // Waits for the prefetch in flight and commits it. A failed (or, with verifyBundle, corrupt) one is
  // rolled back: its neurons are then read on demand, which reports the error if it persists.
  private async finishPrefetch(): Promise<void> {
    const p = this.pending!;
    this.pending = undefined;
    const { stats, cache, prefetchStats: ps } = this;
    const t0 = performance.now();
    await p.done;
    const waited = performance.now() - t0;
    stats.ioMs += waited;
    ps.waitMs += waited;
    ps.readMs += p.end - p.start;
    if (!p.failed) {
      try {
        this.finishLoad(p.load);
        ps.neurons += p.load.neurons;
        ps.bytes += p.load.bytes;
        return;
      } catch {
        /* a bundle failed its check: read on demand */
      }
    }
    cache.rollback();
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
      KernelDtype[layout.dtype], layout.gated ? 1 : 0, Act[layout.activation], this.xq.ptr, this.hOut?.ptr ?? 0, accumulate ? 1 : 0, layout.activationThreshold ?? 0,
    );
    stats.computeMs += performance.now() - t1;
  }

  /**
   * Frees the slot matrix and scratch; a second call does nothing. A lookahead prefetch still in
   * flight (left by an aborted forward pass) writes into the slot matrix, so it is waited for first:
   * its bytes must never land in freed, perhaps already reused, memory.
   */
  dispose(): void | Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const p = this.pending;
    this.pending = undefined;
    if (p) return p.done.then(() => this.free());
    this.free();
  }

  private free(): void {
    this.k.free(this.matrix);
    this.k.free(this.slotIds);
    this.k.free(this.xq);
    if (this.hOut) this.k.free(this.hOut);
    if (this.staging) this.k.free(this.staging);
  }
}

// A selector's ids index the cache and the file. Ids out of order or repeated would make the planner
// produce runs of negative length (corrupting the cache's counts); ids out of range would read another
// layer's bundles under this layer's name. Refused before the cache is touched; O(n), next to nothing.
function checkSelection(selector: string, layer: number, ids: Int32Array, n: number, neurons: number): void {
  if (!(Number.isInteger(n) && n >= 0 && n <= neurons)) {
    throw new FlashError("BAD_ARGUMENT", `selector "${selector}" returned ${n} neurons for layer ${layer}, which has ${neurons}`, { layer, count: n });
  }
  let prev = -1;
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (id <= prev || id >= neurons) {
      throw new FlashError("BAD_ARGUMENT", `selector "${selector}" returned neuron ${id} at index ${i} for layer ${layer}: ids must be ascending, unique and in [0, ${neurons})`, { layer, index: i, neuron: id });
    }
    prev = id;
  }
}

/** First index i < n with sorted[i] ≥ value (n when none). */
function lowerBound(sorted: Int32Array, n: number, value: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function fillAll(out: Int32Array, n: number): number {
  for (let i = 0; i < n; i++) out[i] = i;
  return n;
}
