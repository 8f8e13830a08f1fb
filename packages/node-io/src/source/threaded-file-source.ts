import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { workerScript } from "../worker-script.js";
import type { NodeFileSourceStats } from "./node-file-source.js";
import type { FromReader, ReaderFailure, ReaderWorkerData, ReadBatch, ToReader } from "./reader-protocol.js";
import { AbortedError, SourceError, throwIfAborted, type FlashSource, type ReadRequest } from "./sdk.js";

/** Options of {@link ThreadedFileSource.open}: those of `NodeFileSource`, applied in the reader thread. */
export interface ThreadedFileSourceOptions {
  /** Reads in flight in the reader thread (default 8). */
  maxInFlight?: number;
  /** Open with O_DIRECT (Linux). */
  direct?: boolean;
  /** Retries of a failed or zero-byte read (default 2). */
  retries?: number;
  /** The built reader script (default: `dist/reader-worker.js` of this package). */
  workerScript?: string;
}

interface Pending {
  resolve: () => void;
  reject: (e: Error) => void;
  /** Targets outside any SharedArrayBuffer: read into a staging SAB, copied here on completion. */
  copies: { target: Uint8Array; staging: Uint8Array }[];
}

function zeroStats(): NodeFileSourceStats {
  return { reads: 0, bytes: 0, requests: 0, directReads: 0, bouncedReads: 0, retries: 0, ioWaitMs: 0 };
}

/**
 * A {@link FlashSource} over a local file whose reads run on a reader thread (`worker_threads`), so they
 * are submitted and completed on another core while this thread computes. Same semantics and options
 * as `NodeFileSource` (which does the reading, in the thread).
 *
 * Targets in a SharedArrayBuffer — a WASM memory loaded with `Kernels.load(undefined, { sharedMemory:
 * true })` — are filled in place; any other target is read into a shared staging buffer and copied here
 * when its batch completes (correct, one copy slower). `read` resolves only once every read of the call
 * has settled, as with `NodeFileSource`; a thread that dies rejects every pending call with SourceError.
 */
export class ThreadedFileSource implements FlashSource {
  readonly byteLength: number;
  private readonly pending = new Map<number, Pending>();
  private readonly bufferIds = new WeakMap<SharedArrayBuffer, number>();
  private nextBuffer = 1;
  private nextBatch = 1;
  private closed = false;
  private dead: SourceError | undefined;
  /** Counters reported by the thread with its latest completion, and a baseline for resetStats. */
  private threadStats = zeroStats();
  private baseline = zeroStats();
  private requests = 0;
  private ioWaitMs = 0;
  private busySince = 0;
  private closedPromise: Promise<void> | undefined;
  /** SharedArrayBuffers the thread holds on to (one per shared memory buffer seen), for tests. */
  buffersHeld = 0;
  private onClosed: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly path: string,
    byteLength: number,
  ) {
    this.byteLength = byteLength;
    worker.on("message", (m: FromReader) => this.onMessage(m));
    worker.on("error", (e) => this.fail(new SourceError(`the reader thread of ${path} failed: ${e.message}`, 0, 0, { cause: e })));
    worker.on("exit", (code) => {
      this.fail(new SourceError(`the reader thread of ${path} exited (code ${code})`, 0, 0));
      this.onClosed?.();
    });
    worker.unref(); // an idle source must not keep the process alive; ref'd while reads are pending
  }

  /** Opens `path` in a new reader thread. Rejects with SourceError as `NodeFileSource.open` does. */
  static async open(path: string, options: ThreadedFileSourceOptions = {}): Promise<ThreadedFileSource> {
    const workerData: ReaderWorkerData = { path, direct: options.direct ?? false, maxInFlight: options.maxInFlight ?? 8, retries: options.retries ?? 2 };
    if (!Number.isInteger(workerData.maxInFlight) || workerData.maxInFlight < 1) throw new RangeError(`maxInFlight must be an integer ≥ 1, got ${workerData.maxInFlight}`);
    const worker = new Worker(options.workerScript ?? readerWorkerScript(), { workerData, name: "flashllm-reader" });
    let onMessage: ((m: FromReader) => void) | undefined;
    let onError: ((e: Error) => void) | undefined;
    let onExit: ((code: number) => void) | undefined;
    const opened = await new Promise<FromReader>((resolve, reject) => {
      onMessage = resolve;
      onError = reject;
      onExit = (code) => reject(new SourceError(`the reader thread of ${path} exited at open (code ${code})`, 0, 0));
      worker.once("message", onMessage).once("error", onError).once("exit", onExit);
    })
      .catch(async (e) => {
        await worker.terminate();
        throw e instanceof SourceError ? e : new SourceError(`cannot start the reader thread of ${path}: ${String(e)}`, 0, 0, { cause: e });
      })
      .finally(() => {
        // Only our own listeners: removeAllListeners() would also drop the ones Node's Worker relies on.
        worker.off("message", onMessage!).off("error", onError!).off("exit", onExit!);
      });
    if (opened.type !== "opened") {
      await worker.terminate();
      throw rebuild(opened.type === "open-failed" ? opened.error : { name: "Error", message: `unexpected ${opened.type}`, offset: 0, length: 0 });
    }
    return new ThreadedFileSource(worker, path, opened.byteLength);
  }

  /** Counters as `NodeFileSource.stats` (reads, bytes… counted in the thread; ioWaitMs on this thread). */
  get stats(): NodeFileSourceStats {
    const t = this.threadStats;
    const b = this.baseline;
    return {
      reads: t.reads - b.reads, bytes: t.bytes - b.bytes, directReads: t.directReads - b.directReads,
      bouncedReads: t.bouncedReads - b.bouncedReads, retries: t.retries - b.retries,
      requests: this.requests, ioWaitMs: this.ioWaitMs,
    };
  }

  resetStats(): void {
    this.baseline = { ...this.threadStats };
    this.requests = 0;
    this.ioWaitMs = 0;
    if (this.pending.size > 0) this.busySince = performance.now();
  }

  async read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (this.closed) {
      const r = requests[0] ?? { offset: 0, length: 0 };
      throw new SourceError(`${this.path} is closed: read of ${r.length} bytes at offset ${r.offset}`, r.offset, r.length);
    }
    if (this.dead) throw this.dead;
    const n = requests.length;
    const spans = new Float64Array(3 * n);
    const ids = new Int32Array(n);
    const newBuffers: ReadBatch["newBuffers"] = [];
    const copies: Pending["copies"] = [];
    let count = 0;
    for (const r of requests) {
      this.check(r);
      if (r.length === 0) continue;
      let target = r.target;
      let id: number | undefined;
      if (target.buffer instanceof SharedArrayBuffer) {
        const sab = target.buffer;
        id = this.bufferIds.get(sab);
        if (id === undefined) {
          id = this.nextBuffer++;
          this.bufferIds.set(sab, id);
          newBuffers.push([id, sab, false]);
        }
      } else {
        // Staging for this request only: the thread forgets it when the batch completes.
        const staging = new Uint8Array(new SharedArrayBuffer(r.length));
        copies.push({ target, staging });
        target = staging;
        id = this.nextBuffer++;
        newBuffers.push([id, staging.buffer as SharedArrayBuffer, true]);
      }
      spans[3 * count] = r.offset;
      spans[3 * count + 1] = r.length;
      spans[3 * count + 2] = target.byteOffset;
      ids[count++] = id;
    }
    this.requests += n;
    if (count === 0) return;
    const id = this.nextBatch++;
    const batch: ReadBatch = { type: "read", id, spans: spans.subarray(0, 3 * count), bufferIds: ids.subarray(0, count), newBuffers };
    if (this.pending.size === 0) {
      this.busySince = performance.now();
      this.worker.ref();
    }
    const done = new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject, copies }));
    const onAbort = () => this.post({ type: "abort", id });
    signal?.addEventListener("abort", onAbort, { once: true });
    this.post(batch);
    try {
      await done;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Aborts reads in flight (they reject with AbortedError once settled), closes the file and ends the thread. */
  async close(): Promise<void> {
    if (this.closed) return this.closedPromise;
    this.closed = true;
    this.closedPromise = new Promise<void>((resolve) => {
      this.onClosed = resolve;
      if (this.dead) return resolve();
      this.worker.ref();
      this.post({ type: "close" });
    });
    await this.closedPromise;
    await this.worker.terminate();
  }

  private post(m: ToReader): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromReader): void {
    if (m.type === "closed") {
      this.onClosed?.();
      return;
    }
    if (m.type !== "done") return;
    this.threadStats = m.stats;
    this.buffersHeld = m.buffersHeld;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    this.settled();
    if (m.error) {
      p.reject(rebuild(m.error));
      return;
    }
    for (const c of p.copies) c.target.set(c.staging);
    p.resolve();
  }

  private settled(): void {
    if (this.pending.size > 0) return;
    this.ioWaitMs += performance.now() - this.busySince;
    if (!this.closed) this.worker.unref();
  }

  private fail(e: SourceError): void {
    if (this.dead) return;
    this.dead = e;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) p.reject(e);
  }

  private check(r: ReadRequest): void {
    const { offset, length, target } = r;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.byteLength) {
      throw new SourceError(`read of ${length} bytes at offset ${offset} is outside ${this.path} (${this.byteLength} bytes)`, offset, length);
    }
    if (target.byteLength < length) {
      throw new SourceError(`read of ${length} bytes at offset ${offset}: target holds only ${target.byteLength} bytes (detached by memory.grow?)`, offset, length);
    }
  }
}

function rebuild(f: ReaderFailure): Error {
  if (f.name === "AbortedError") return new AbortedError(f.message);
  return new SourceError(f.message, f.offset, f.length);
}

/** The built reader thread script (`dist/reader-worker.js`). */
export function readerWorkerScript(): string {
  return workerScript("reader-worker.js");
}
