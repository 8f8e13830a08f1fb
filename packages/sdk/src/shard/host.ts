import type { FromShard, ToShard } from "./protocol.js";

/**
 * How a sharded model gets its workers: the SDK cannot start threads or open files, so the host does
 * (like `FlashSource` for storage). node-io implements it with `worker_threads`, web-io with Web
 * Workers. Each worker runs `runShard` with a way to open its own handle on the model file (a path in
 * Node; a File, URL or OPFS name in a browser): the SDK never sees it.
 */
export interface ShardHost {
  /** Starts the worker of shard `index`. */
  spawn(index: number): ShardPort;
}

/** The coordinator's end of one shard worker. */
export interface ShardPort {
  postMessage(message: ToShard): void;
  /** Registers the one listener for the shard's messages. */
  onMessage(listener: (message: FromShard) => void): void;
  /**
   * Registers the one listener for the worker's death: an uncaught error, running out of memory, or an
   * exit the coordinator did not ask for. Called at most once.
   */
  onExit(listener: (error: Error) => void): void;
  /** Stops the worker (whatever it is doing); resolves once it is gone. */
  terminate(): Promise<void>;
}
