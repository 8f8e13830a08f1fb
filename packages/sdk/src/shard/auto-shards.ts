/**
 * How many shards "auto" means, for the hosts (node-io's `--workers auto`, web-io's `workers: "auto"`):
 * the arithmetic both share; each host adds what it knows (cores, cross-origin isolation, reads).
 */

/**
 * What one instance holds by default: a wasm32 memory is at most 4 GiB, less the module, allocator
 * headers and slack (the sharded engine keeps the same headroom per shard).
 */
export const ONE_INSTANCE_BYTES = 4 * 1024 ** 3 - 256 * 1024 ** 2;

/**
 * The least of the model a shard should hold when shards are chosen for speed: a token costs two
 * round trips between the coordinator and its shards per layer (~40-100 µs each on a 2-core VM); a
 * shard with less than this to compute spends more on them than it saves (stories260K in a browser
 * tab: 1 worker 682-1,087 tokens/s, 2 workers 232-255).
 */
export const MIN_SHARD_BYTES = 64 * 1024 ** 2;

/** Shards that `need` bytes of model take for memory alone (at most {@link ONE_INSTANCE_BYTES} each). */
export function shardsForMemory(need: number): number {
  return Math.max(1, Math.ceil(need / ONE_INSTANCE_BYTES));
}

/**
 * Shards for speed: one per core, but no more than gives each {@link MIN_SHARD_BYTES} of `need`, and
 * never fewer than memory needs (even beyond the cores).
 */
export function shardsPerCore(need: number, cores: number): number {
  const bySize = Math.max(1, Math.floor(need / MIN_SHARD_BYTES));
  return Math.max(shardsForMemory(need), Math.min(Math.max(1, Math.floor(cores) || 1), bySize));
}

/**
 * `k` shards laid over `threads` threads (shard i on thread i mod threads, as node-io's host does):
 * more shards than threads are rounded up to a multiple of them, so that every thread takes the same
 * number of steps per layer (5 shards on 2 threads would make one thread do 3 of every 5; 6 do 3 and
 * 3, each shard a sixth of the model instead of a fifth). At most `threads` shards are left as they are.
 */
export function balancedShards(k: number, threads: number): number {
  const t = Math.max(1, Math.floor(threads) || 1);
  return k <= t ? k : Math.ceil(k / t) * t;
}
