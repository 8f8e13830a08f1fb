import { expect } from "vitest";
import type { FlashSource, ReadRequest } from "../../src/source.js";
import { MemorySource } from "../../src/source.js";

/**
 * Test-side safetensors writing and reference conversions, written independently of src/hf so the
 * reader is checked against a second implementation, not against itself.
 */

export type Dt = "F32" | "F16" | "BF16" | string;

/** One tensor to write: raw little-endian data bytes. */
export interface RawTensor {
  name: string;
  dtype: Dt;
  shape: number[];
  data: Uint8Array;
}

/** u64 LE header length + JSON header (space-padded to 8 like the reference writer) + data. */
export function buildFile(header: unknown, data: Uint8Array, pad = true): Uint8Array {
  let text = typeof header === "string" ? header : JSON.stringify(header);
  if (pad) while (new TextEncoder().encode(text).length % 8 !== 0) text += " ";
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setUint32(0, h.length, true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

/** A valid safetensors file holding `tensors` back to back, with `__metadata__`. */
export function writeSafetensors(tensors: RawTensor[], pad = true): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  const data = new Uint8Array(off);
  off = 0;
  for (const t of tensors) {
    data.set(t.data, off);
    off += t.data.length;
  }
  return buildFile(header, data, pad);
}

/** Deterministic xorshift32 in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const v = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) v.setFloat32(i * 4, values[i], true);
  return out;
}

export function u16Bytes(bits: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(bits.length * 2);
  const v = new DataView(out.buffer);
  for (let i = 0; i < bits.length; i++) v.setUint16(i * 2, bits[i], true);
  return out;
}

/** IEEE half → number by the textbook formula (no bit tricks shared with the reader). */
export function refF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 (1 sign, 8 exponent, 7 mantissa bits) → number by the formula. */
export function refBf16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 7) & 0xff;
  const mant = h & 0x7f;
  if (exp === 0) return sign * mant * 2 ** -133;
  if (exp === 255) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 128) * 2 ** (exp - 127);
}

/** Exact comparison that treats NaN = NaN and distinguishes ±0; reports the first difference. */
export function expectSameValues(actual: Float32Array, expected: ArrayLike<number>, what = "tensor"): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const e = Math.fround(expected[i]);
    const a = actual[i];
    if (!(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)))) {
      expect.fail(`${what}[${i}]: expected ${e}, got ${a}`);
    }
  }
}

export { errorOf } from "../format/helpers.js";

/** A MemorySource that logs every request, to check what the reader touches. */
export class CountingSource implements FlashSource {
  readonly log: { offset: number; length: number }[] = [];
  closed = false;
  private readonly inner: MemorySource;
  readonly byteLength: number;
  constructor(bytes: Uint8Array) {
    this.inner = new MemorySource(bytes);
    this.byteLength = bytes.byteLength;
  }
  read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    for (const r of requests) this.log.push({ offset: r.offset, length: r.length });
    return this.inner.read(requests, signal);
  }
  close(): Promise<void> {
    this.closed = true;
    return this.inner.close();
  }
  get bytesRead(): number {
    return this.log.reduce((s, r) => s + r.length, 0);
  }
}

/** A source of `byteLength` zero bytes except `prefix`, without allocating them (for huge-size cases). */
export function sparseSource(prefix: Uint8Array, byteLength: number): FlashSource {
  return {
    byteLength,
    async read(requests) {
      for (const r of requests) {
        r.target.fill(0, 0, r.length);
        if (r.offset < prefix.length) r.target.set(prefix.subarray(r.offset, Math.min(prefix.length, r.offset + r.length)));
      }
    },
    async close() {},
  };
}
