import { rowBytes } from "../format/rows.js";
import { BudgetError } from "../errors.js";
import type { Manifest } from "../format/types.js";
import { ALLOC_BLOCK_OVERHEAD } from "../kernels/alloc-overhead.js";
import { Transformer } from "../model/transformer.js";
import { directPlacementSlack } from "../model/weights.js";
import type { FfnStorageLayout, FlashStrategy } from "./flash-ffn.js";
import { flashScratchBytes, maxUsefulSlots } from "./flash-ffn.js";

/**
 * Where a memory budget goes (bytes of WASM memory). The budget covers the model: resident weights,
 * KV cache, activations, scratch and neuron caches. The runtime's own fixed overhead (the kernels
 * module's data and stack, and the last partly used 64 KiB page) comes on top and is stated in
 * `overheadBytes`: WASM memory never exceeds `budget + overheadBytes`.
 */
export interface MemoryPlan {
  /** The budget asked for, or `Infinity`. */
  budget: number;
  /** Runtime overhead outside the budget: the kernels module before any allocation, plus page slack. */
  overheadBytes: number;
  /** Embeddings, attention, norms, output head. */
  residentBytes: number;
  /** KV cache, activations and scratch of the forward pass. */
  stateBytes: number;
  /** Scratch of the flash FFN path. */
  ffnScratchBytes: number;
  /** Neuron cache slot matrices. */
  cacheBytes: number;
  /** Slots of the neuron cache (shared by all layers). */
  capacity: number;
  /** Staging buffer for reads merged across cached neurons (0: none). */
  stagingBytes: number;
  /** What the plan charges to the budget (resident + state + scratch + caches). */
  totalBytes: number;
  /**
   * JS heap bytes of the bundle CRC table kept for `verifyReads` (4 per neuron per layer; 0 without
   * it). Host memory, not WASM memory: not part of `totalBytes` nor of the budget.
   */
  crcTableBytes: number;
}

const BLOCK_OVERHEAD = ALLOC_BLOCK_OVERHEAD;
const SLACK = 64 * 1024; // memory grows in 64 KiB pages
const MAX_STAGING = 256 * 1024;

/** Bytes the resident tensors of a manifest take in WASM memory. */
export function residentBytes(m: Manifest): number {
  let total = 0;
  for (const t of m.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const cols = t.shape[t.shape.length - 1];
    const data = t.dtype === "q8" ? n : (n / cols) * rowBytes(t.dtype, cols);
    // (q8: + one f32 scale per row in a block of its own)
    total += data + directPlacementSlack(data) + (t.dtype === "q8" ? (n / cols) * 4 + 2 * BLOCK_OVERHEAD : BLOCK_OVERHEAD);
  }
  return total;
}

/**
 * Splits a budget between what a model must keep and its neuron caches (ARCHITECTURE.md §0). The cache gets
 * what is left, up to every neuron; when not even one slot per cache fits, throws {@link BudgetError}
 * with every figure, so the user sees what to change.
 */
export function planMemory(
  manifest: Manifest,
  layout: FfnStorageLayout,
  strategy: FlashStrategy,
  contextLength: number,
  moduleBytes: number,
  budget = Infinity,
  /** Further model memory charged to the budget (a predictor's scratch). */
  extraBytes = 0,
): MemoryPlan {
  const resident = residentBytes(manifest);
  const state = Transformer.stateBytes(manifest.config, contextLength) + 11 * BLOCK_OVERHEAD;
  return planFromParts({ resident, state, extra: extraBytes }, layout, strategy, contextLength, moduleBytes, budget);
}

/**
 * The same split for any instance (a shard of a sharded model too): what it must keep (`resident`
 * weights, `state` = KV cache, activations and scratch, `extra` = further scratch), then the FFN
 * path's scratch, the staging buffer and the neuron cache from what is left of `budget`.
 */
export function planFromParts(
  parts: { resident: number; state: number; extra: number },
  layout: FfnStorageLayout,
  strategy: FlashStrategy,
  contextLength: number,
  moduleBytes: number,
  budget = Infinity,
): MemoryPlan {
  const { resident, state } = parts;
  const scratch = flashScratchBytes(layout) + 3 * BLOCK_OVERHEAD + parts.extra;
  const fixed = resident + state + scratch;
  const matrixOverhead = 4096 + BLOCK_OVERHEAD; // the slot matrix is 4096-aligned
  const left = budget - fixed;
  // An eighth of what the cache could have (at most 256 KiB) goes to the staging buffer that lets reads
  // merge runs across cached neurons; none when that is under two bundles.
  const stride = layout.bundleStride;
  let stagingBytes = Math.floor(Math.min(MAX_STAGING, (left - matrixOverhead) / 8) / stride) * stride;
  if (!(stagingBytes >= 2 * stride)) stagingBytes = 0;
  const stagingCost = stagingBytes > 0 ? stagingBytes + matrixOverhead : 0;
  const capacity = Math.min(maxUsefulSlots(layout, strategy), Math.floor((left - matrixOverhead - stagingCost) / stride));
  const plan: MemoryPlan = {
    budget,
    overheadBytes: moduleBytes + SLACK,
    residentBytes: resident,
    stateBytes: state,
    ffnScratchBytes: scratch,
    cacheBytes: Math.max(capacity, 0) * layout.bundleStride + matrixOverhead,
    capacity,
    stagingBytes,
    totalBytes: 0,
    crcTableBytes: 0,
  };
  plan.totalBytes = fixed + plan.cacheBytes + stagingCost;
  if (!(capacity >= 1)) {
    const minimum = fixed + layout.bundleStride + matrixOverhead;
    throw new BudgetError(
      `memory budget of ${budget} bytes is too small: the model needs ${fixed} bytes before its neuron cache ` +
        `(resident weights ${resident}, KV cache and activations for ${contextLength} positions ${state}, ` +
        `FFN scratch ${scratch}) and ${layout.bundleStride + matrixOverhead} for a neuron cache of one ` +
        `${layout.bundleStride}-byte bundle: at least ${minimum} bytes. A shorter context (contextLength) or q8 weights need less.`,
      { budget, minimum, residentBytes: resident, stateBytes: state, ffnScratchBytes: scratch, contextLength },
    );
  }
  return plan;
}
