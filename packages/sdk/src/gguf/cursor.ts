import { FormatError } from "../errors.js";
import type { FlashSource } from "../source.js";

const CHUNK = 1 << 16;

/**
 * A forward-only little-endian reader over a {@link FlashSource}: it reads the file in 64 KiB chunks
 * (more when one value needs more), so a GGUF header of any size is parsed without holding the file.
 * Callers `await need(n)` before taking `n` bytes; running past the end of the file is TRUNCATED,
 * past `limit` (the header bound) BAD_HEADER.
 */
export class ByteCursor {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;
  private at = 0;

  constructor(
    private readonly source: FlashSource,
    private readonly limit: number,
    private readonly what: string,
    private readonly signal?: AbortSignal,
  ) {}

  /** Absolute offset of the next byte. */
  get pos(): number {
    return this.bufStart + this.at;
  }

  /** Bytes left in the file after the cursor. */
  get remaining(): number {
    return this.source.byteLength - this.pos;
  }

  /** Makes the next `n` bytes available. */
  async need(n: number): Promise<void> {
    if (this.at + n <= this.buf.byteLength) return;
    const pos = this.pos;
    if (pos + n > this.source.byteLength) {
      throw new FormatError("TRUNCATED", `${this.what}: needs ${n} bytes at offset ${pos} but the file ends at ${this.source.byteLength}`, { offset: pos, need: n, fileBytes: this.source.byteLength });
    }
    if (pos + n > this.limit) {
      throw new FormatError("BAD_HEADER", `${this.what}: the header runs past ${this.limit} bytes (at offset ${pos}, ${n} more needed)`, { offset: pos, limit: this.limit });
    }
    const len = Math.min(Math.max(n, CHUNK), this.source.byteLength - pos);
    const next = new Uint8Array(len);
    await this.source.read([{ offset: pos, length: len, target: next }], this.signal);
    this.buf = next;
    this.view = new DataView(next.buffer);
    this.bufStart = pos;
    this.at = 0;
  }

  u8(): number {
    return this.buf[this.at++];
  }
  i8(): number {
    return this.view.getInt8(this.at++);
  }
  u16(): number {
    const v = this.view.getUint16(this.at, true);
    this.at += 2;
    return v;
  }
  i16(): number {
    const v = this.view.getInt16(this.at, true);
    this.at += 2;
    return v;
  }
  u32(): number {
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }
  i32(): number {
    const v = this.view.getInt32(this.at, true);
    this.at += 4;
    return v;
  }
  f32(): number {
    const v = this.view.getFloat32(this.at, true);
    this.at += 4;
    return v;
  }
  f64(): number {
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }
  u64(): bigint {
    const v = this.view.getBigUint64(this.at, true);
    this.at += 8;
    return v;
  }
  i64(): bigint {
    const v = this.view.getBigInt64(this.at, true);
    this.at += 8;
    return v;
  }
  /** `n` raw bytes (a copy). */
  bytes(n: number): Uint8Array {
    const b = this.buf.slice(this.at, this.at + n);
    this.at += n;
    return b;
  }
}
