import { ShardThreadMap, ShardThreadPorts, localShardPort, type ShardEnvelope, type ShardHost, type ShardPort } from "@flashllm/sdk";
import type { FromShard } from "@flashllm/sdk/internal";
import type { ModelSourceSpec } from "../protocol.js";
import { openShardSource } from "./open-source.js";

/** The first message a shard worker gets: where its own handle on the model is (then the SDK's protocol). */
export interface ShardOpen {
  t: "flashllm-shard-source";
  source: ModelSourceSpec;
  /** The engine's worker holds the OPFS file through an exclusive handle: read it as a File instead. */
  exclusive: boolean;
}

/**
 * Shard workers as nested Web Workers of the engine's worker: each runs `shard-worker.js` (the SDK's
 * `runShard` once per shard it hosts), opens each shard's own source from `source` (a File/Blob, an
 * HTTP URL, or an OPFS name) and loads its slice into that shard's own WASM memory. Shard i runs on
 * thread i mod `threads` (default: `navigator.hardwareConcurrency`): thread 0 is the engine's worker
 * itself (the SDK's `localShardPort`) unless `firstShardHere` is false, each other thread one nested
 * worker hosting every shard given to it. So K shards take min(K, cores) threads, as in Node.
 */
export class WebShardHost implements ShardHost {
  private readonly map: ShardThreadMap;

  constructor(
    readonly source: ModelSourceSpec,
    readonly options: {
      /** URL of the shard worker module (default: `shard-worker.js` beside this module). */
      workerUrl?: string | URL;
      /** The engine's worker holds an OPFS source through an exclusive handle (see `OpfsSource.shared`). */
      exclusive?: boolean;
      /** Run shard 0 (and every `threads`-th) in the engine's worker (default true); false: nested workers only. */
      firstShardHere?: boolean;
      /** Threads the shards run on (default: the device's cores). */
      threads?: number;
    } = {},
  ) {
    const exclusive = options.exclusive ?? false;
    this.map = new ShardThreadMap(
      options.threads ?? Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1),
      options.firstShardHere ?? true,
      () => localShardPort(() => openShardSource(source, exclusive)),
      (t) => {
        const name = `flashllm-shards-${t}`;
        // Written out in full so that bundlers see and emit the shard worker.
        const url = options.workerUrl;
        const worker = url
          ? new Worker(url, { type: "module", name })
          : new Worker(new URL("./shard-worker.js", import.meta.url), { type: "module", name });
        const open: ShardOpen = { t: "flashllm-shard-source", source, exclusive };
        worker.postMessage(open);
        return nestedThread(worker);
      },
    );
  }

  spawn(index: number): ShardPort {
    return this.map.spawn(index);
  }
}

/** The engine's side of one nested shard worker: its ports, and its death reported to them. */
function nestedThread(worker: Worker): ShardThreadPorts {
  const thread = new ShardThreadPorts({
    post: (env) => worker.postMessage(env),
    onMessage: (listener) => worker.addEventListener("message", (e: MessageEvent<ShardEnvelope<FromShard>>) => listener(e.data)),
    end: async () => worker.terminate(), // synchronous: the thread and its WASM memories are gone
  });
  // A Web Worker has no exit event: it dies by an uncaught error (including a script that does not
  // load, and running out of memory), or a message it cannot read. Every shard it hosts is lost.
  worker.addEventListener("error", (e: ErrorEvent) => {
    e.preventDefault();
    thread.lost(new Error(e.message || "the shard worker failed to start (is shard-worker.js served beside worker.js, as a JavaScript module?)"));
  });
  worker.addEventListener("messageerror", () => thread.lost(new Error("a message from the shard worker could not be read")));
  return thread;
}
