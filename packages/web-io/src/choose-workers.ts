import { FlashError } from "@flashllm/sdk";
import { MIN_SHARD_BYTES, balancedShards, shardsForMemory, shardsPerCore } from "@flashllm/sdk/internal";

export { MIN_SHARD_BYTES, ONE_INSTANCE_BYTES } from "@flashllm/sdk/internal";
import type { ShardTransportKind } from "./protocol.js";

/** What the tab offers: cores and whether SharedArrayBuffer is there. */
export interface TabCapabilities {
  cores: number;
  isolated: boolean;
}

/** The workers a load runs with. */
export interface WorkerChoice {
  workers: number;
  transport?: ShardTransportKind;
  why: string;
}

/**
 * Resolves `workers` (a number or "auto") for a model of `fileBytes` under `budgetBytes`:
 * - "auto": one worker per core, but no more than gives each at least {@link MIN_SHARD_BYTES} of the
 *   model (its budget, or the file without one), and at least as many as one wasm32 memory per worker
 *   needs. Without cross-origin isolation (no SharedArrayBuffer) "auto" keeps one worker unless the
 *   model needs more memory than one worker has: message round trips cost too much to split for speed.
 * - a number: that many; without isolation the shards synchronise by messages.
 * More workers than cores are rounded up to a multiple of the cores (`balancedShards`): `WebShardHost`
 * puts shard i on thread i mod cores, so each thread then steps as many shards.
 * `transport` forces one (a "shared" transport needs isolation).
 */
export function chooseWorkers(asked: number | "auto" | undefined, tab: TabCapabilities, fileBytes: number, budgetBytes?: number, transport?: ShardTransportKind): WorkerChoice {
  if (transport === "shared" && !tab.isolated) {
    throw new FlashError("BAD_ARGUMENT", 'transport "shared" needs SharedArrayBuffer, which a page has only when cross-origin isolated (COOP/COEP headers); use "message" or leave it out');
  }
  const need = Math.min(budgetBytes ?? fileBytes, fileBytes);
  const cores = Math.max(1, Math.floor(tab.cores) || 1);
  const byMemory = balancedShards(shardsForMemory(need), cores);
  const pick = (workers: number, why: string): WorkerChoice =>
    workers === 1 ? { workers, why } : { workers, transport: transport ?? (tab.isolated ? "shared" : "message"), why };
  if (asked === undefined) return pick(1, "the default");
  if (asked === 1) return pick(1, "the number asked for");
  if (asked !== "auto") {
    if (!(Number.isSafeInteger(asked) && asked >= 1)) throw new FlashError("BAD_ARGUMENT", `workers must be an integer ≥ 1 or "auto", got ${String(asked)}`);
    return pick(asked, tab.isolated || transport === "message" ? "the number asked for" : "the number asked for; this page is not cross-origin isolated, so they exchange messages (slower than shared memory)");
  }
  if (!tab.isolated) {
    return byMemory > 1
      ? pick(byMemory, `the model needs ${byMemory} workers' memory; this page is not cross-origin isolated, so they exchange messages (slower than shared memory)`)
      : pick(1, "this page is not cross-origin isolated (no SharedArrayBuffer); shard workers would have to exchange messages, which costs more than they save");
  }
  const workers = balancedShards(shardsPerCore(need, cores), cores);
  if (workers === 1) {
    return pick(1, cores === 1 ? "this device reports one core" : `split over ${cores} cores, each worker would hold less than ${MIN_SHARD_BYTES / 1024 ** 2} MiB of this model, too little to pay for the round trips between workers`);
  }
  return pick(workers, workers > cores ? `the model needs ${workers} workers' memory (4 GiB each at most)` : workers === cores ? `one per core (${cores})` : `each with at least ${MIN_SHARD_BYTES / 1024 ** 2} MiB of the model (${cores} cores)`);
}
