import { SourceError, throwIfAborted } from "./errors.js";

/** One positional read: fill `target` with `length` bytes of the source starting at `offset`. */
export interface ReadRequest {
  /** Byte offset in the source. */
  offset: number;
  /** Number of bytes; equals `target.byteLength`. */
  length: number;
  /** Where the bytes go. May be a view of WASM memory: backends must fill it in place, not replace it. */
  target: Uint8Array;
}

/**
 * The only thing a storage backend implements (ARCHITECTURE.md §3, step 5). The engine decides what to read; the backend
 * decides how to parallelise. `read` fills every target or throws a {@link SourceError}; a short read is
 * retried, then reported, never returned as zeros.
 */
export interface FlashSource {
  /** Total size of the stored file in bytes. */
  readonly byteLength: number;
  /** Fill every request's target. Rejects with `SourceError` (or `AbortedError` when `signal` fires). */
  read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void>;
  /** Release the backend's handles. Reads after close reject. */
  close(): Promise<void>;
}

/** A {@link FlashSource} over bytes already in memory: for tests, small models and browsers' ArrayBuffers. */
export class MemorySource implements FlashSource {
  readonly byteLength: number;
  private closed = false;
  constructor(private readonly bytes: Uint8Array) {
    this.byteLength = bytes.byteLength;
  }
  async read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    for (const r of requests) {
      if (this.closed) throw new SourceError("source is closed", r.offset, r.length);
      if (r.offset < 0 || r.length < 0 || r.offset + r.length > this.byteLength || r.target.byteLength < r.length) {
        throw new SourceError(
          `read of ${r.length} bytes at offset ${r.offset} is outside the source (${this.byteLength} bytes)`,
          r.offset,
          r.length,
        );
      }
      r.target.set(this.bytes.subarray(r.offset, r.offset + r.length));
    }
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}
