import { FlashError, Kernels, openFlashModel, type FlashModel, type OpenFlashOptions, type ShardedFlashModel, type ShardTransport } from "@flashllm/sdk/internal";
import { NodeFileSource, ThreadedFileSource } from "../source/index.js";
import { NodeShardHost, type NodeShardHostOptions } from "./node-shard-host.js";

/** Options of {@link openModelFile}. */
export interface OpenModelFileOptions extends OpenFlashOptions {
  /** Shards: 1 (default) is one WASM instance on this thread; K > 1 is K shards over min(K, threads) threads: this one (which also coordinates and runs shard 0) and worker threads. */
  workers?: number;
  /** Read with O_DIRECT. */
  direct?: boolean;
  /** Reads in flight (per shard). */
  maxInFlight?: number;
  /** Shards: "shared" (SharedArrayBuffer + Atomics, default) or "message" (postMessage). */
  transport?: ShardTransport;
  /** Shards: lookahead prefetch per shard. */
  prefetch?: boolean;
  /**
   * One instance: where reads run. `inline` (default): on this thread, between kernel calls. `thread`: on
   * a reader thread that fills a shared WASM memory while this thread computes (prefetched reads then
   * progress during compute; on a machine whose second core is real, not a sibling of the first).
   */
  reader?: "inline" | "thread";
  /** Shards: V8 heap limits of each worker. */
  resourceLimits?: NodeShardHostOptions["resourceLimits"];
  /** Shards: threads they run on (default: the cores; shard i on thread i mod threads, thread 0 this one). */
  threads?: number;
}

/**
 * Opens a `.flm` file from disk, on this thread (`workers: 1`) or cut across `workers` shards (shard 0
 * on this thread, the others worker threads), each with its own handle on the file. `dispose` also closes the file and ends the workers.
 */
export async function openModelFile(path: string, opts: OpenModelFileOptions = {}): Promise<FlashModel | ShardedFlashModel> {
  const { workers = 1, direct, maxInFlight, resourceLimits, threads, reader = "inline", ...rest } = opts;
  if (reader !== "inline" && reader !== "thread") throw new FlashError("BAD_ARGUMENT", `reader must be "inline" or "thread", got ${JSON.stringify(reader)}`);
  const threaded = reader === "thread" && workers <= 1; // shards read on their own threads already
  const source = threaded ? await ThreadedFileSource.open(path, { direct, maxInFlight }) : await NodeFileSource.open(path, { direct, maxInFlight });
  try {
    const model =
      workers > 1
        ? await openFlashModel(source, { ...rest, workers, shardHost: new NodeShardHost(path, { direct, maxInFlight, resourceLimits, threads }) })
        : await openFlashModel(source, {
            ...rest,
            workers: workers as 1, // 0 or a fraction is refused there
            kernels: rest.kernels ?? (threaded ? await Kernels.load(undefined, { sharedMemory: true }) : undefined),
          });
    model.onDispose(() => source.close());
    return model;
  } catch (e) {
    await source.close();
    throw e;
  }
}
