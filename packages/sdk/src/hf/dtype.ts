import { HOST_LITTLE_ENDIAN } from "../format/bytes.js";

/**
 * Element types of safetensors that flashllm converts to f32. Everything the engine computes with is
 * f32 (or q8 it quantises itself), so half-precision checkpoints are widened on read.
 */
export type SafetensorsDtype = "F32" | "F16" | "BF16";

/** Bytes per element of each supported dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

/** True for the dtypes {@link convertToF32} handles. */
export function isSupportedDtype(d: unknown): d is SafetensorsDtype {
  return d === "F32" || d === "F16" || d === "BF16";
}

// f16 → f32 bit patterns for all 65,536 halves (256 KiB), built on first use. Writing bit patterns
// (not numbers) keeps NaN payloads and the sign of zero, and a lookup is the fastest portable widening.
let f16Table: Uint32Array | null = null;

function buildF16Table(): Uint32Array {
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) {
      t[h] = sign | 0x7f800000 | (mant << 13); // inf / NaN, payload kept
    } else if (exp !== 0) {
      t[h] = sign | ((exp + 112) << 23) | (mant << 13); // rebias 15 → 127
    } else if (mant === 0) {
      t[h] = sign; // ±0
    } else {
      // Subnormal half: mant·2^-24. Shift the leading 1 into the implicit bit; every half subnormal is
      // a normal f32, so this is exact.
      let e = 113; // exponent 1-15+127, lowered once per shift
      while ((mant & 0x400) === 0) {
        mant <<= 1;
        e--;
      }
      t[h] = sign | (e << 23) | ((mant & 0x3ff) << 13);
    }
  }
  return t;
}

/**
 * Widens `count` little-endian elements of `dtype` from `src` (any alignment) into `out[outStart..]`.
 * Exact for every input: f16 and bf16 values are all representable in f32.
 */
export function convertToF32(dtype: SafetensorsDtype, src: Uint8Array, count: number, out: Float32Array, outStart: number): void {
  if (dtype === "F32") {
    if (HOST_LITTLE_ENDIAN) {
      new Uint8Array(out.buffer, out.byteOffset + outStart * 4, count * 4).set(src.subarray(0, count * 4));
    } else {
      const v = new DataView(src.buffer, src.byteOffset, count * 4);
      for (let i = 0; i < count; i++) out[outStart + i] = v.getFloat32(i * 4, true);
    }
    return;
  }
  // Output as raw bits so NaN payloads survive (a Float32Array store may canonicalise NaN).
  const bits = new Uint32Array(out.buffer, out.byteOffset + outStart * 4, count);
  const halves = halfWords(src, count);
  if (dtype === "BF16") {
    // bf16 is the top half of an f32: widening is a shift.
    for (let i = 0; i < count; i++) bits[i] = halves[i] << 16;
  } else {
    const t = (f16Table ??= buildF16Table());
    for (let i = 0; i < count; i++) bits[i] = t[halves[i]];
  }
}

/** The 16-bit little-endian words of `src`: a view when aligned on a little-endian host, else a copy. */
function halfWords(src: Uint8Array, count: number): Uint16Array {
  if (HOST_LITTLE_ENDIAN && src.byteOffset % 2 === 0) return new Uint16Array(src.buffer, src.byteOffset, count);
  const out = new Uint16Array(count);
  const v = new DataView(src.buffer, src.byteOffset, count * 2);
  for (let i = 0; i < count; i++) out[i] = v.getUint16(i * 2, true);
  return out;
}
