/**
 * Little helpers over bytes. The file is little-endian; typed-array views are used when the host is
 * little-endian too (every platform that runs WASM in practice), with a DataView copy as the fallback
 * so a big-endian host still reads the right numbers.
 */

/** True when typed arrays use little-endian byte order on this host. */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** `n` rounded up to a multiple of `alignment` (a power of two). Exact for every safe integer `n`. */
export function alignUp(n: number, alignment: number): number {
  // Division by a power of two is exact in binary floating point, so no precision is lost near 2^53.
  return Math.ceil(n / alignment) * alignment;
}

/** True for 1, 2, 4, 8, ... up to 2^52. */
export function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

/** The little-endian bytes of `data`: a view when possible, a copy on big-endian hosts. */
export function f32ToBytes(data: Float32Array): Uint8Array {
  if (HOST_LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i], true);
  return out;
}

/** `count` little-endian f32 values at `bytes[offset..]`: a view when aligned on a little-endian host, else a copy. */
export function bytesToF32(bytes: Uint8Array, offset: number, count: number): Float32Array {
  const at = bytes.byteOffset + offset;
  if (HOST_LITTLE_ENDIAN && at % 4 === 0) return new Float32Array(bytes.buffer, at, count);
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, at, count * 4);
  for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Writes `src` as little-endian f32 values into `target` at byte `offset` (any alignment). */
export function writeF32(target: Uint8Array, offset: number, src: ArrayLike<number>): void {
  const at = target.byteOffset + offset;
  if (HOST_LITTLE_ENDIAN && at % 4 === 0) {
    new Float32Array(target.buffer, at, src.length).set(src);
    return;
  }
  const view = new DataView(target.buffer, at, src.length * 4);
  for (let i = 0; i < src.length; i++) view.setFloat32(i * 4, src[i], true);
}

/** An Int8Array over the same memory as `bytes[offset..offset+count]`. */
export function int8View(bytes: Uint8Array, offset: number, count: number): Int8Array {
  return new Int8Array(bytes.buffer, bytes.byteOffset + offset, count);
}
