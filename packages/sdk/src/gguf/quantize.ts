import { FlashError } from "../errors.js";
import { GgmlType, ggmlTypeName } from "./constants.js";
import { typeBytes } from "./dequant.js";
import { f16ToF32, f32ToF16 } from "./half.js";

/**
 * The quantizers the GGUF writer needs, as ggml's reference `quantize_row_*_ref` (ggml-quants.c) does
 * them, so a file written here holds the blocks llama.cpp's own converter would write:
 * - Q8_0: `d = max|x|/127`, `q = roundf(x/d)` (ties away from zero), d stored as f16.
 * - Q4_0: `d = max/−8` where max is the value of largest magnitude (sign kept), `q = min(15, trunc(x/d + 8.5))`.
 * - F16: round to nearest even.
 */

/** Encodes `src` as `type` (F32, F16, Q8_0 or Q4_0) into a new byte array. */
export function quantize(type: number, src: Float32Array): Uint8Array {
  const out = new Uint8Array(typeBytes(type, src.length));
  const dv = new DataView(out.buffer);
  switch (type) {
    case GgmlType.F32:
      for (let i = 0; i < src.length; i++) dv.setFloat32(i * 4, src[i], true);
      break;
    case GgmlType.F16:
      for (let i = 0; i < src.length; i++) dv.setUint16(i * 2, f32ToF16(src[i]), true);
      break;
    case GgmlType.Q8_0:
      quantizeQ8_0(src, out);
      break;
    case GgmlType.Q4_0:
      quantizeQ4_0(src, out);
      break;
    default:
      throw new FlashError("UNSUPPORTED", `the GGUF writer cannot encode ${ggmlTypeName(type)} (F32, F16, Q8_0, Q4_0)`, { type });
  }
  return out;
}

function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

function quantizeQ8_0(x: Float32Array, out: Uint8Array): void {
  for (let blk = 0; blk < x.length / 32; blk++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[blk * 32 + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const h = f32ToF16(d);
    const p = blk * 34;
    out[p] = h & 0xff;
    out[p + 1] = h >> 8;
    for (let j = 0; j < 32; j++) out[p + 2 + j] = roundAway(Math.fround(x[blk * 32 + j] * id)) & 0xff;
  }
}

function quantizeQ4_0(x: Float32Array, out: Uint8Array): void {
  for (let blk = 0; blk < x.length / 32; blk++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[blk * 32 + j];
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    const h = f32ToF16(d);
    const p = blk * 18;
    out[p] = h & 0xff;
    out[p + 1] = h >> 8;
    for (let j = 0; j < 16; j++) {
      // (int8_t)(v + 8.5f) truncates toward zero, then MIN(15, ·)
      const q0 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[blk * 32 + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[blk * 32 + 16 + j] * id) + 8.5)));
      out[p + 2 + j] = (q0 & 15) | ((q1 & 15) << 4);
    }
  }
}

/** The f32 value of the f16 scale stored at `bytes[at]` (little-endian). */
export function blockScale(bytes: Uint8Array, at: number): number {
  return f16ToF32(bytes[at] | (bytes[at + 1] << 8));
}
