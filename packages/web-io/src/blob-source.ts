import { SourceError, throwIfAborted } from "@flashllm/sdk";
import type { FlashSource, ReadRequest } from "@flashllm/sdk";
import { Limiter, abortedFrom, anySignal, checkRequest, runAll } from "./util.js";

/** Options of {@link BlobSource}. */
export interface BlobSourceOptions {
  /** Slices being read at once (default 4). */
  maxInFlight?: number;
  /** Longer requests are read as several slices of this size, in parallel (default 8 MiB). */
  maxSliceBytes?: number;
}

/**
 * A {@link FlashSource} over a `Blob`, usually a `File` the user picked: each request reads one
 * `blob.slice(...)`, so the file is never loaded whole. Browsers hand slice bytes back in a new
 * buffer, so this costs one copy into the target (OPFS avoids it: import the file there for speed).
 *
 * A file changed or removed on disk after it was picked becomes unreadable (`NotReadableError`);
 * that surfaces as a {@link SourceError} that says so.
 */
export class BlobSource implements FlashSource {
  readonly byteLength: number;
  private readonly limiter: Limiter;
  private readonly maxSlice: number;
  private readonly closer = new AbortController();
  private closed = false;

  constructor(
    private readonly blob: Blob,
    options: BlobSourceOptions = {},
  ) {
    this.byteLength = blob.size;
    this.limiter = new Limiter(options.maxInFlight ?? 4);
    this.maxSlice = options.maxSliceBytes ?? 8 * 1024 * 1024;
  }

  /** The file's name for messages (`Blob`s have none). */
  get name(): string {
    return (this.blob as Partial<File>).name || "the file";
  }

  async read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    const slices: ReadRequest[] = [];
    for (const r of requests) {
      if (this.closed) throw new SourceError(`${this.name} is closed: read of ${r.length} bytes at offset ${r.offset}`, r.offset, r.length);
      checkRequest(r, this.byteLength, this.name);
      for (let o = 0; o < r.length; o += this.maxSlice) {
        const n = Math.min(this.maxSlice, r.length - o);
        slices.push({ offset: r.offset + o, length: n, target: r.target.subarray(o, o + n) });
      }
    }
    const cancel = new AbortController();
    const stop = anySignal([signal, cancel.signal, this.closer.signal]);
    await runAll(slices, this.limiter, cancel, async (s) => {
      let buf: ArrayBuffer;
      try {
        buf = await this.blob.slice(s.offset, s.offset + s.length).arrayBuffer();
      } catch (e) {
        const why =
          (e as DOMException)?.name === "NotReadableError"
            ? "it can no longer be read (was it changed, moved or deleted after it was picked? Pick it again)"
            : `${(e as Error)?.message ?? e}`;
        throw new SourceError(`cannot read ${s.length} bytes at offset ${s.offset} of ${this.name}: ${why}`, s.offset, s.length, { cause: e });
      }
      // Checked after the await: a cancelled read must not write into memory the engine took back.
      if (stop.aborted) throw abortedFrom(stop);
      if (buf.byteLength !== s.length) {
        throw new SourceError(`${this.name} gave ${buf.byteLength} of ${s.length} bytes at offset ${s.offset} (file changed since it was picked?)`, s.offset, s.length);
      }
      s.target.set(new Uint8Array(buf));
    });
    throwIfAborted(signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closer.abort("source closed");
  }
}
