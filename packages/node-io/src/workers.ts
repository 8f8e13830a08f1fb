import type { FlashStats, ShardedFlashModel, ShardFigures } from "@flashllm/sdk/internal";
import { formatBytes } from "./format-stats.js";

/**
 * What one instance holds by default: a wasm32 memory is at most 4 GiB, less the module, allocator
 * headers and slack (the sharded engine keeps the same headroom per shard).
 */
export const ONE_INSTANCE_BYTES = 4 * 1024 ** 3 - 256 * 1024 ** 2;

/**
 * `--workers` when not given: one instance when the model's memory (its budget, or the whole file
 * without one) fits one wasm32 memory, else as many shards as that memory needs (at least 2, even
 * more than the cores: each shard's memory is capped at 4 GiB). Measured on this 2-core machine (docs/benchmarks.md, 7B shape at a 50% budget, idle):
 * 2 workers took 751 ms/token against one instance's 606, because the shards' reads, the coordinator
 * and two compute threads share two cores; so shards are used for what one instance cannot hold.
 */
export function defaultWorkers(fileBytes: number, budgetBytes?: number): number {
  const need = Math.min(budgetBytes ?? fileBytes, fileBytes);
  if (need <= ONE_INSTANCE_BYTES) return 1;
  return Math.max(2, Math.ceil(need / ONE_INSTANCE_BYTES)); // memory decides, even beyond the cores
}

/** Parses `--workers` ("auto" or an integer ≥ 1). */
export function parseWorkers(v: string | number | undefined, fileBytes: number, budgetBytes?: number): number {
  if (v === undefined || v === "auto") return defaultWorkers(fileBytes, budgetBytes);
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
