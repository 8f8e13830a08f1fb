import { availableParallelism } from "node:os";
import { Worker, type ResourceLimits } from "node:worker_threads";
import { FlashError, localShardPort, type FromShard, type ShardHost, type ShardPort, type ToShard } from "@flashllm/sdk/internal";
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

/** A message between the coordinator and one of the shards a worker hosts. */
export interface ShardEnvelope<M> {
  shard: number;
  m: M;
}

/**
 * Shard workers as Node `worker_threads`: each runs `dist/shard-worker.js`, which hosts the shards
 * given to its thread, each opening its own `NodeFileSource` on `path` and running the SDK's
 * `runShard`. The shards of thread 0 run on the caller's thread unless `firstShardHere` is false.
 */
export class NodeShardHost implements ShardHost {
  private readonly threads = new Map<number, ShardThread>();

  constructor(readonly path: string, readonly options: NodeShardHostOptions = {}) {
    const t = options.threads;
    if (t !== undefined && !(Number.isInteger(t) && t >= 1)) throw new FlashError("BAD_ARGUMENT", `threads must be an integer ≥ 1, got ${t}`);
  }

  /** Threads shards are spread over. */
  get threadCount(): number {
    return this.options.threads ?? availableParallelism();
  }

  spawn(index: number): ShardPort {
    const { direct, maxInFlight } = this.options;
    const here = this.options.firstShardHere ?? true;
    const t = index % this.threadCount;
    if (t === 0 && here) return localShardPort(() => NodeFileSource.open(this.path, { direct: direct ?? false, maxInFlight }));
    let thread = this.threads.get(t);
    if (!thread || thread.stopping) {
      const workerData: ShardWorkerData = { path: this.path, direct: direct ?? false, maxInFlight };
      const worker = new Worker(this.options.workerScript ?? shardWorkerScript(), { workerData, resourceLimits: this.options.resourceLimits, name: `flashllm-shards-${t}` });
      thread = new ShardThread(worker);
      this.threads.set(t, thread);
    }
    return thread.port(index);
  }
}

/** The built shard worker script (`dist/shard-worker.js`). */
export function shardWorkerScript(): string {
  return workerScript("shard-worker.js");
}

/** One worker thread and the ports of the shards it hosts. */
class ShardThread {
  private readonly listeners = new Map<number, (m: FromShard) => void>();
  private readonly exitListeners = new Map<number, (e: Error) => void>();
  private readonly hosted = new Set<number>();
  private readonly terminating = new Set<number>();
  private readonly reported = new Set<number>();
  private readonly gone: Promise<void>;
  stopping = false;

  constructor(private readonly worker: Worker) {
    let error: Error | undefined;
    worker.on("message", (env: ShardEnvelope<FromShard>) => this.listeners.get(env.shard)?.(env.m));
    worker.on("error", (e) => {
      error = e;
      this.report(e);
    });
    this.gone = new Promise((resolve) => {
      worker.on("exit", (code) => {
        if (!this.stopping) this.report(error ?? new Error(`the worker exited with code ${code}`));
        resolve();
      });
    });
  }

  // The worker died: every shard it hosts that was not being stopped has lost its thread.
  private report(e: Error): void {
    for (const s of this.hosted) {
      if (this.reported.has(s) || this.terminating.has(s)) continue;
      this.reported.add(s);
      this.exitListeners.get(s)?.(e);
    }
  }

  port(shard: number): ShardPort {
    this.hosted.add(shard);
    return {
      postMessage: (m: ToShard) => this.worker.postMessage({ shard, m } satisfies ShardEnvelope<ToShard>),
      onMessage: (listener) => this.listeners.set(shard, listener),
      onExit: (listener) => this.exitListeners.set(shard, listener),
      // The thread ends when every shard it hosts has been told to: a group stops all its shards together.
      terminate: async () => {
        this.terminating.add(shard);
        if (this.terminating.size === this.hosted.size && !this.stopping) {
          this.stopping = true;
          await this.worker.terminate();
        }
        await this.gone;
      },
    };
  }
}
