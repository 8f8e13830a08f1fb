import { availableParallelism } from "node:os";
import { balancedShards, shardsForMemory, shardsPerCore, type FlashStats, type ShardedFlashModel, type ShardFigures } from "@flashllm/sdk/internal";
import { formatBytes } from "./format-stats.js";

/**
 * `--workers` when not given ("auto"):
 * - a budget below the file (the model reads as it goes): one instance when the budget fits one wasm32
 *   memory, else as many shards as that memory needs (even beyond the cores: 4 GiB each at most). On
 *   this VM every read in flight also taxes the other core, and in steady state (the cache filled) one
 *   instance was as fast or faster: Llama-2-7B shape at 50%, 1 instance 397.6-443.0 ms/token against 2
 *   shards' 507.6-619.1 with less memory free than the file, 609.7-630.1 against 566.4-614.5 without.
 * - no budget, or one that holds the whole file (nothing is read once the cache has filled): one shard
 *   per core, but no more than gives each 64 MiB (`MIN_SHARD_BYTES`), and at least as many as memory
 *   needs. All in memory, 2 shards took 0.54-0.68x the time of one instance (16 of 7B's layers).
 * Shard 0 computes on the calling thread, and shards run on at most one thread per core (shard i on
 * thread i mod cores, `NodeShardHost`), so when memory needs more shards than cores their number is
 * rounded up to a multiple of the cores (`balancedShards`): every thread then steps the same number of
 * shards (docs/benchmarks.md, 30 Nov).
 */
export function defaultWorkers(fileBytes: number, budgetBytes?: number, cores = availableParallelism()): number {
  const need = Math.min(budgetBytes ?? fileBytes, fileBytes);
  const k = budgetBytes !== undefined && budgetBytes < fileBytes ? shardsForMemory(need) : shardsPerCore(need, cores);
  return k > 1 ? balancedShards(k, cores) : k;
}

/** Parses `--workers` ("auto" or an integer ≥ 1). */
export function parseWorkers(v: string | number | undefined, fileBytes: number, budgetBytes?: number, cores?: number): number {
  if (v === undefined || v === "auto") return defaultWorkers(fileBytes, budgetBytes, cores);
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
