import { availableParallelism } from "node:os";
import type { FlashStats, ShardedFlashModel, ShardFigures } from "@flashllm/sdk/internal";
import { formatBytes } from "./format-stats.js";

/**
 * Files below this run on one instance by default: at that size a token's compute is a few hundred
 * microseconds, less than the two synchronisations per layer that shards add.
 */
export const SHARD_MIN_FILE_BYTES = 256 * 1024 * 1024;

/** `--workers` when not given: every core for a model large enough to gain, else 1. */
export function defaultWorkers(fileBytes: number): number {
  return fileBytes >= SHARD_MIN_FILE_BYTES ? availableParallelism() : 1;
}

/** Parses `--workers` ("auto" or an integer ≥ 1). */
export function parseWorkers(v: string | number | undefined, fileBytes: number): number {
  if (v === undefined || v === "auto") return defaultWorkers(fileBytes);
  const n = Number(v);
  if (!(Number.isInteger(n) && n >= 1)) throw new Error(`--workers must be an integer ≥ 1 or "auto", got ${v}`);
  return n;
}

/** One line per shard: what it owns and how its budget share is used. */
export function shardMemoryLines(model: ShardedFlashModel): string[] {
  const p = model.memoryPlan;
  const lines = [`coordinator: ${formatBytes(p.coordinatorBytes)} (embeddings, norms, activations); ${model.workers} shards, transport ${model.group.transport}`];
  model.slices.forEach((s, i) => {
    const sp = p.shards[i];
    lines.push(
      `shard ${i}: heads ${s.heads.count === 0 ? "none" : `${s.heads.first}–${s.heads.first + s.heads.count - 1}`}, ` +
        `neurons ${s.neurons.first}–${s.neurons.first + s.neurons.count - 1}, vocabulary ${s.vocab.first}–${s.vocab.first + s.vocab.count - 1}; ` +
        `budget ${Number.isFinite(sp.budget) ? formatBytes(sp.budget) : "unlimited"}: resident ${formatBytes(sp.residentBytes)}, KV+activations ${formatBytes(sp.stateBytes)}, ` +
        `neuron cache ${formatBytes(sp.cacheBytes)} (${sp.capacity} bundles); WASM memory ${formatBytes(model.shardMemoryBytes[i])}`,
    );
  });
  return lines;
}

/** The shards' FFN statistics summed (bytes, requests, neurons); times are per shard, not summed. */
export function sumShardStats(figures: readonly ShardFigures[]): FlashStats {
  const out = { ...figures[0].stats };
  for (const f of figures.slice(1)) for (const k of Object.keys(out) as (keyof FlashStats)[]) if (k !== "tokens") out[k] += f.stats[k];
  return out;
}
