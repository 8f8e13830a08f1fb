// Messages between ThreadedFileSource (the engine's thread) and its reader thread (reader-worker.ts).
import type { NodeFileSourceStats } from "./node-file-source.js";

/** What the reader thread is opened with. */
export interface ReaderWorkerData {
  path: string;
  direct: boolean;
  maxInFlight: number;
  retries: number;
}

/**
 * One `read()` call. `spans` holds, per request, [file offset, length, byte offset in buffer `buffers[i]`]
 * (3 numbers each); `bufferIds[i]` names the SharedArrayBuffer request i lands in. A buffer the thread
 * has not seen yet travels with the batch (`newBuffers`), once; `transient` ones (staging for targets
 * outside shared memory) are forgotten when the batch completes.
 */
export interface ReadBatch {
  type: "read";
  id: number;
  spans: Float64Array;
  bufferIds: Int32Array;
  newBuffers: [id: number, buffer: SharedArrayBuffer, transient: boolean][];
}

export type ToReader = ReadBatch | { type: "abort"; id: number } | { type: "close" };

/** A failed batch: enough to rebuild the typed error on the engine's side. */
export interface ReaderFailure {
  name: string;
  message: string;
  offset: number;
  length: number;
}

export type FromReader =
  | { type: "opened"; byteLength: number }
  | { type: "open-failed"; error: ReaderFailure }
  | { type: "done"; id: number; error?: ReaderFailure; stats: NodeFileSourceStats; buffersHeld: number }
  | { type: "closed" };
