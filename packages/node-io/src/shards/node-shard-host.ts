import { Worker, type ResourceLimits } from "node:worker_threads";
import { localShardPort, type FromShard, type ShardHost, type ShardPort, type ToShard } from "@flashllm/sdk/internal";
import { NodeFileSource } from "../source/index.js";
import { workerScript } from "../worker-script.js";

/** How each shard worker opens the model file, and limits on its thread. */
export interface NodeShardHostOptions {
  /** Read with O_DIRECT (as `NodeFileSource`). */
  direct?: boolean;
  /** Reads in flight per shard. */
  maxInFlight?: number;
  /** V8 heap limits of each worker (WASM memory is outside them: each shard's is capped at 4 GiB); shard 0 on this thread has this thread's. */
  resourceLimits?: ResourceLimits;
  /** The worker script (default: `dist/shard-worker.js` of this package). */
  workerScript?: string;
  /**
   * Run shard 0 on the coordinator's own thread (default true): K shards then use K threads, the
   * caller's and K − 1 workers, as the single-instance path computes on the caller's thread too. With
   * false every shard is a worker (K + 1 threads; the caller's thread stays free during a token).
   */
  firstShardHere?: boolean;
}

/** The data a shard worker starts with (`workerData`). */
export interface ShardWorkerData {
  index: number;
  path: string;
  direct: boolean;
  maxInFlight?: number;
}

/**
 * Shard workers as Node `worker_threads`: each runs `dist/shard-worker.js`, which opens its own
 * `NodeFileSource` on `path` and runs the SDK's `runShard`. Shard 0 runs on the caller's thread
 * unless `firstShardHere` is false.
 */
export class NodeShardHost implements ShardHost {
  constructor(readonly path: string, readonly options: NodeShardHostOptions = {}) {}

  spawn(index: number): ShardPort {
    if (index === 0 && (this.options.firstShardHere ?? true)) {
      const { direct, maxInFlight } = this.options;
      return localShardPort(() => NodeFileSource.open(this.path, { direct: direct ?? false, maxInFlight }));
    }
    const workerData: ShardWorkerData = { index, path: this.path, direct: this.options.direct ?? false, maxInFlight: this.options.maxInFlight };
    const worker = new Worker(this.options.workerScript ?? shardWorkerScript(), { workerData, resourceLimits: this.options.resourceLimits, name: `flashllm-shard-${index}` });
    return new NodeShardPort(worker);
  }
}

/** The built shard worker script (`dist/shard-worker.js`). */
export function shardWorkerScript(): string {
  return workerScript("shard-worker.js");
}

class NodeShardPort implements ShardPort {
  private stopping = false;
  private exitListener: ((e: Error) => void) | undefined;
  private reported = false;
  private readonly gone: Promise<void>;

  constructor(private readonly worker: Worker) {
    let error: Error | undefined;
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

  private report(e: Error): void {
    if (this.reported || this.stopping) return;
    this.reported = true;
    this.exitListener?.(e);
  }

  postMessage(message: ToShard): void {
    this.worker.postMessage(message);
  }

  onMessage(listener: (message: FromShard) => void): void {
    this.worker.on("message", listener);
  }

  onExit(listener: (error: Error) => void): void {
    this.exitListener = listener;
  }

  async terminate(): Promise<void> {
    this.stopping = true;
    await this.worker.terminate();
    await this.gone;
  }
}
