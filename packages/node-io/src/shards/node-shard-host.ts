import { availableParallelism } from "node:os";
import { Worker, type ResourceLimits } from "node:worker_threads";
import { ShardThreadMap, ShardThreadPorts, localShardPort, type FromShard, type ShardEnvelope, type ShardHost, type ShardPort } from "@flashllm/sdk/internal";
import { NodeFileSource } from "../source/index.js";
import { workerScript } from "../worker-script.js";

/** How each shard worker opens the model file, and limits on its thread. */
export interface NodeShardHostOptions {
  /** Read with O_DIRECT (as `NodeFileSource`). */
  direct?: boolean;
  /** Reads in flight per shard. */
  maxInFlight?: number;
  /** V8 heap limits of each worker (WASM memory is outside them: each shard's is capped at 4 GiB); shards on this thread have this thread's. */
  resourceLimits?: ResourceLimits;
  /** The worker script (default: `dist/shard-worker.js` of this package). */
  workerScript?: string;
  /**
   * Run shard 0 on the coordinator's own thread (default true): K shards then use K threads, the
   * caller's and K − 1 workers, as the single-instance path computes on the caller's thread too. With
   * false every shard is a worker (K + 1 threads; the caller's thread stays free during a token).
   */
  firstShardHere?: boolean;
  /**
   * Threads the shards run on (default: the machine's cores, `availableParallelism()`). Shard `i`
   * runs on thread `i mod threads`: thread 0 is the caller's (unless `firstShardHere` is false), each
   * other one worker thread hosting every shard given to it, each shard still its own WASM instance.
   * So a model that needs more instances than there are cores (more than 4 GiB per core) does not
   * start more threads than cores: at 7B all in memory, 4 shards on 2 threads took 0.81-1.00x the
   * time of 4 shards on 4 threads (docs/benchmarks.md, 30 Nov). The shards of one thread take a step in turn.
   */
  threads?: number;
}

/** The data a shard worker starts with (`workerData`). */
export interface ShardWorkerData {
  path: string;
  direct: boolean;
  maxInFlight?: number;
}

/**
 * Shard workers as Node `worker_threads`: each runs `dist/shard-worker.js`, which hosts the shards
 * given to its thread, each opening its own `NodeFileSource` on `path` and running the SDK's
 * `runShard`. The shards of thread 0 run on the caller's thread unless `firstShardHere` is false.
 */
export class NodeShardHost implements ShardHost {
  private readonly map: ShardThreadMap;

  constructor(readonly path: string, readonly options: NodeShardHostOptions = {}) {
    const { direct = false, maxInFlight } = options;
    this.map = new ShardThreadMap(
      shardThreads(options.threads),
      options.firstShardHere ?? true,
      () => localShardPort(() => NodeFileSource.open(path, { direct, maxInFlight })),
      (t) => {
        const workerData: ShardWorkerData = { path, direct, maxInFlight };
        return workerThread(new Worker(options.workerScript ?? shardWorkerScript(), { workerData, resourceLimits: options.resourceLimits, name: `flashllm-shards-${t}` }));
      },
    );
  }

  /** Threads shards are spread over. */
  get threadCount(): number {
    return this.map.count;
  }

  spawn(index: number): ShardPort {
    return this.map.spawn(index);
  }
}

/** Threads the shards use when `threads` is not given: one per core. */
export function shardThreads(threads?: number): number {
  return threads ?? availableParallelism();
}

/** The built shard worker script (`dist/shard-worker.js`). */
export function shardWorkerScript(): string {
  return workerScript("shard-worker.js");
}

/** The coordinator's side of one shard worker thread: its ports, and its death reported to them. */
function workerThread(worker: Worker): ShardThreadPorts {
  let error: Error | undefined;
  let ending = false;
  const gone = new Promise<void>((resolve) => worker.on("exit", () => resolve()));
  const thread = new ShardThreadPorts({
    post: (env) => worker.postMessage(env),
    onMessage: (listener) => worker.on("message", (env: ShardEnvelope<FromShard>) => listener(env)),
    end: async () => {
      ending = true;
      await worker.terminate();
      await gone;
    },
  });
  worker.on("error", (e) => {
    error = e;
    if (!ending) thread.lost(e);
  });
  worker.on("exit", (code) => {
    if (!ending) thread.lost(error ?? new Error(`the worker exited with code ${code}`));
  });
  return thread;
}
