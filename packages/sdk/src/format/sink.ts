/**
 * Where the writer puts bytes. Positional, so a backend can be a file opened for random-access
 * writes (Node `FileHandle.write(buf, 0, len, offset)`), an OPFS sync access handle, or memory.
 */

/** A positional byte sink. `write` must store all of `bytes` at `offset` before resolving. */
export interface FlmSink {
  write(offset: number, bytes: Uint8Array): Promise<void>;
}

/**
 * A {@link FlmSink} in memory, for tests and small models. Copies what it is given (the writer
 * reuses its buffers) and grows as needed; bytes never written read as zero.
 */
export class MemorySink implements FlmSink {
  private buf = new Uint8Array(0);
  private size = 0;
  /** Number of `write` calls so far. */
  writes = 0;
  async write(offset: number, bytes: Uint8Array): Promise<void> {
    const end = offset + bytes.byteLength;
    if (end > this.buf.byteLength) {
      const grown = new Uint8Array(Math.max(end, this.buf.byteLength * 2));
      grown.set(this.buf.subarray(0, this.size));
      this.buf = grown;
    }
    this.buf.set(bytes, offset);
    this.size = Math.max(this.size, end);
    this.writes++;
  }
  /** A copy of everything written, from byte 0 to the furthest byte written. */
  bytes(): Uint8Array {
    return this.buf.slice(0, this.size);
  }
}
