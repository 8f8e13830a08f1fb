/** Cumulative figures of the flash FFN path (ARCHITECTURE.md §3, step 7). Divide by `tokens` for per-token values. */
export interface FlashStats {
  /** Tokens processed (forward passes). */
  tokens: number;
  /** Layer evaluations (tokens × layers). */
  layerRuns: number;
  /** Neurons the selector asked for, summed over layer runs. */
  activeNeurons: number;
  /** Of those, neurons already in the cache. */
  cacheHits: number;
  /** Bundles read from storage (asked-for misses plus gap neurons read to merge requests). */
  neuronsLoaded: number;
  /** Of `neuronsLoaded`, neurons nobody asked for, read to merge two requests. */
  gapNeurons: number;
  /** Bytes read from the source. */
  bytesRead: number;
  /** Read requests issued (after coalescing). */
  readRequests: number;
  /** Of those, reads that merged several runs through the staging buffer. */
  stagedReads: number;
  /** Wall time waiting for reads, ms. */
  ioMs: number;
  /** Time in cache bookkeeping: lookups, eviction (including bundle moves), planning, ms. */
  memoryMs: number;
  /** Time in the selector and the FFN kernel, ms. */
  computeMs: number;
}

export function emptyFlashStats(): FlashStats {
  return { tokens: 0, layerRuns: 0, activeNeurons: 0, cacheHits: 0, neuronsLoaded: 0, gapNeurons: 0, bytesRead: 0, readRequests: 0, stagedReads: 0, ioMs: 0, memoryMs: 0, computeMs: 0 };
}
