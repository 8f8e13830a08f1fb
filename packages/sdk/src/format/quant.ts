import { FlashError } from "../errors.js";

/**
 * Symmetric int8 quantization with one f32 scale per vector (a bundle row, a tensor row):
 * `scale = max|v| / 127` rounded to f32, `q = round(v / scale)` with ties away from zero (Rust's
 * `f32::round`, which the kernels use), so `value ≈ scale·q` with an error of at most `scale/2`.
 * An all-zero vector gets scale 0 and all-zero q. Non-finite inputs are rejected: they would poison the scale.
 */

/** A quantized matrix: row-major int8 values and one f32 scale per row. */
export interface QuantizedRows {
  /** `rows·cols` int8 values, row-major. */
  q: Int8Array;
  /** One scale per row: value = scales[r]·q[r·cols + c]. */
  scales: Float32Array;
}

/** Rounds to the nearest integer, ties away from zero (Rust `f32::round`); `Math.round` rounds ties up. */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/**
 * Quantizes `src[start..start+count]` into `dst[dstOffset..dstOffset+count]` and returns the scale.
 * Throws BAD_ARGUMENT on NaN or ±Infinity.
 */
export function quantizeVector(
  src: ArrayLike<number>,
  dst: Int8Array,
  dstOffset = 0,
  start = 0,
  count = src.length - start,
): number {
  let max = 0;
  for (let i = start; i < start + count; i++) {
    const v = src[i];
    if (!Number.isFinite(v)) throw new FlashError("BAD_ARGUMENT", `cannot quantize non-finite value ${v} at index ${i}`, { index: i });
    const a = Math.abs(v);
    if (a > max) max = a;
  }
  const scale = Math.fround(max / 127);
  if (scale === 0) {
    dst.fill(0, dstOffset, dstOffset + count);
    return 0;
  }
  for (let i = 0; i < count; i++) {
    const q = roundHalfAway(src[start + i] / scale);
    // |v|/scale can exceed 127 by a rounding error of the f32 scale; clamp keeps the int8 symmetric.
    dst[dstOffset + i] = q > 127 ? 127 : q < -127 ? -127 : q;
  }
  return scale;
}

/** Quantizes a row-major `rows × cols` matrix row by row. */
export function quantizeRows(data: ArrayLike<number>, rows: number, cols: number): QuantizedRows {
  if (data.length !== rows * cols) {
    throw new FlashError("BAD_ARGUMENT", `expected ${rows}×${cols} = ${rows * cols} values, got ${data.length}`);
  }
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) scales[r] = quantizeVector(data, q, r * cols, r * cols, cols);
  return { q, scales };
}

/** The f32 values `scales[r]·q[r·cols + c]` of a quantized matrix. */
export function dequantizeRows(rows: QuantizedRows, cols: number): Float32Array {
  const out = new Float32Array(rows.q.length);
  for (let i = 0; i < out.length; i++) out[i] = rows.scales[Math.floor(i / cols)] * rows.q[i];
  return out;
}
