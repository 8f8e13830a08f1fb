import { localShardPort, type ShardHost, type ShardPort } from "@flashllm/sdk";
import type { FromShard, ToShard } from "@flashllm/sdk/internal";
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
 * `runShard`), opens its own source from `source` (a File/Blob, an HTTP URL, or an OPFS name) and
 * loads its slice into its own WASM memory. Shard 0 runs in the engine's worker itself (the SDK's
 * `localShardPort`) unless `firstShardHere` is false: K shards then take K threads, not K + 1.
 */
export class WebShardHost implements ShardHost {
  constructor(
    readonly source: ModelSourceSpec,
    readonly options: {
      /** URL of the shard worker module (default: `shard-worker.js` beside this module). */
      workerUrl?: string | URL;
      /** The engine's worker holds an OPFS source through an exclusive handle (see `OpfsSource.shared`). */
      exclusive?: boolean;
      /** Run shard 0 in the engine's worker (default true); false: every shard a nested worker. */
      firstShardHere?: boolean;
    } = {},
  ) {}

  spawn(index: number): ShardPort {
    if (index === 0 && (this.options.firstShardHere ?? true)) return localShardPort(() => openShardSource(this.source, this.options.exclusive ?? false));
    const name = `flashllm-shard-${index}`;
    // Written out in full so that bundlers see and emit the shard worker.
    const url = this.options.workerUrl;
    const worker = url
      ? new Worker(url, { type: "module", name })
      : new Worker(new URL("./shard-worker.js", import.meta.url), { type: "module", name });
    const open: ShardOpen = { t: "flashllm-shard-source", source: this.source, exclusive: this.options.exclusive ?? false };
    worker.postMessage(open);
    return new WebShardPort(worker);
  }
}

class WebShardPort implements ShardPort {
  private exitListener: ((e: Error) => void) | undefined;
  private ended = false; // reported or terminated: no second report

  constructor(private readonly worker: Worker) {
    // A Web Worker has no exit event: it dies by an uncaught error (including a script that does not
    // load, and running out of memory), or a message it cannot read.
    worker.addEventListener("error", (e: ErrorEvent) => {
      e.preventDefault();
      this.report(new Error(e.message || "the shard worker failed to start (is shard-worker.js served beside worker.js, as a JavaScript module?)"));
    });
    worker.addEventListener("messageerror", () => this.report(new Error("a message from the shard worker could not be read")));
  }

  private report(e: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.exitListener?.(e);
  }

  postMessage(message: ToShard): void {
    this.worker.postMessage(message);
  }

  onMessage(listener: (message: FromShard) => void): void {
    this.worker.addEventListener("message", (e: MessageEvent<FromShard>) => listener(e.data));
  }

  onExit(listener: (error: Error) => void): void {
    this.exitListener = listener;
  }

  async terminate(): Promise<void> {
    this.ended = true;
    this.worker.terminate(); // synchronous (a second call does nothing): the thread and its WASM memory are gone
  }
}
