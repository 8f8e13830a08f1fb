/**
 * IEEE half precision ↔ f32, scalar and exact: f16 → f32 is exact for every half; f32 → f16 rounds
 * to nearest, ties to even (what F16C's `vcvtps2ph` and ggml's software fallback do), with overflow
 * to ±Inf and NaN kept NaN.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 value of half bit pattern `h`. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** The half bit pattern nearest to `x` (ties to even). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow → Inf
  if (e <= 0) {
    // Subnormal half (or zero): the value is m·2^-24 with m = round(full mantissa · 2^(e-1) / 2^13).
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const full = mant | 0x800000;
    const shift = 14 - e;
    let m = full >>> shift;
    const rest = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m; // m may carry into the smallest normal: still the right bit pattern
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // a carry into the exponent is correct rounding (up to Inf)
  return h;
}
