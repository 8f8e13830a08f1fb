import { FlashError } from "../errors.js";
import { convertToF32 } from "../hf/dtype.js";
import { GGML_TYPES, GgmlType, ggmlTypeName } from "./constants.js";
import { f16ToF32 } from "./half.js";

/**
 * Dequantizers of the ggml block types, written from the block structs of ggml-common.h and the
 * reference `dequantize_row_*` of ggml-quants.c. Each takes `count` values' worth of blocks from
 * `src` (any alignment) and writes f32 into `out[outStart..]`.
 */

/** Bytes that `count` values of `type` occupy; BAD_ARGUMENT when `count` is not whole blocks. */
export function typeBytes(type: number, count: number): number {
  const info = GGML_TYPES[type];
  if (!info) throw new FlashError("UNSUPPORTED", `ggml tensor type ${type} is unknown`, { type });
  if (count % info.blockSize !== 0) throw new FlashError("BAD_ARGUMENT", `${count} values are not whole ${info.name} blocks of ${info.blockSize}`, { type, count });
  return (count / info.blockSize) * info.typeSize;
}

/** Dequantizes `count` values of `type` from `src` into `out` starting at `outStart`. */
export function dequantize(type: number, src: Uint8Array, count: number, out: Float32Array, outStart = 0): void {
  const need = typeBytes(type, count);
  if (src.byteLength < need) throw new FlashError("BAD_ARGUMENT", `${ggmlTypeName(type)}: ${count} values need ${need} bytes, got ${src.byteLength}`);
  if (outStart + count > out.length) throw new FlashError("BAD_ARGUMENT", `output holds ${out.length} values, ${outStart + count} needed`);
  switch (type) {
    case GgmlType.F32:
      convertToF32("F32", src, count, out, outStart);
      return;
    case GgmlType.F16:
      convertToF32("F16", src, count, out, outStart);
      return;
    case GgmlType.BF16:
      convertToF32("BF16", src, count, out, outStart);
      return;
    case GgmlType.Q8_0:
      q8_0(src, count, out, outStart);
      return;
    case GgmlType.Q4_0:
      q4_0(src, count, out, outStart);
      return;
    case GgmlType.Q4_1:
      q4_1(src, count, out, outStart);
      return;
    case GgmlType.Q5_0:
      q5_0(src, count, out, outStart);
      return;
    case GgmlType.Q4_K:
      q4_K(src, count, out, outStart);
      return;
    case GgmlType.Q6_K:
      q6_K(src, count, out, outStart);
      return;
    default:
      throw new FlashError("UNSUPPORTED", `cannot dequantize ggml type ${ggmlTypeName(type)} (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q6_K)`, { type });
  }
}

const half = (b: Uint8Array, at: number) => f16ToF32(b[at] | (b[at + 1] << 8));

/** block_q8_0 (34 B): f16 d, i8 qs[32]; x = d·q. */
function q8_0(b: Uint8Array, count: number, out: Float32Array, o: number): void {
  for (let blk = 0, p = 0; blk < count / 32; blk++, p += 34) {
    const d = half(b, p);
    for (let j = 0; j < 32; j++) out[o++] = d * ((b[p + 2 + j] << 24) >> 24);
  }
}

/** block_q4_0 (18 B): f16 d, u8 qs[16]; x[j] = d·((qs[j] & 15) − 8), x[j+16] = d·((qs[j] >> 4) − 8). */
function q4_0(b: Uint8Array, count: number, out: Float32Array, o: number): void {
  for (let blk = 0, p = 0; blk < count / 32; blk++, p += 18, o += 32) {
    const d = half(b, p);
    for (let j = 0; j < 16; j++) {
      const q = b[p + 2 + j];
      out[o + j] = d * ((q & 15) - 8);
      out[o + j + 16] = d * ((q >> 4) - 8);
    }
  }
}

/** block_q4_1 (20 B): f16 d, f16 m, u8 qs[16]; x[j] = d·(qs[j] & 15) + m, x[j+16] = d·(qs[j] >> 4) + m. */
function q4_1(b: Uint8Array, count: number, out: Float32Array, o: number): void {
  for (let blk = 0, p = 0; blk < count / 32; blk++, p += 20, o += 32) {
    const d = half(b, p);
    const m = half(b, p + 2);
    for (let j = 0; j < 16; j++) {
      const q = b[p + 4 + j];
      out[o + j] = d * (q & 15) + m;
      out[o + j + 16] = d * (q >> 4) + m;
    }
  }
}

/**
 * block_q5_0 (22 B): f16 d, u8 qh[4] (bit j: the fifth bit of value j), u8 qs[16];
 * x[j] = d·(((qs[j] & 15) | bit j << 4) − 16), x[j+16] = d·(((qs[j] >> 4) | bit j+16 << 4) − 16).
 * PowerInfer's quantizer stores predictors (fc1/fc2) as Q5_0 in most of its quantized files.
 */
function q5_0(b: Uint8Array, count: number, out: Float32Array, o: number): void {
  for (let blk = 0, p = 0; blk < count / 32; blk++, p += 22, o += 32) {
    const d = half(b, p);
    const qh = (b[p + 2] | (b[p + 3] << 8) | (b[p + 4] << 16) | (b[p + 5] << 24)) >>> 0;
    for (let j = 0; j < 16; j++) {
      const q = b[p + 6 + j];
      out[o + j] = d * (((q & 15) | (((qh >>> j) & 1) << 4)) - 16);
      out[o + j + 16] = d * (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16);
    }
  }
}

/**
 * block_q4_K (144 B, 256 values): f16 d, f16 dmin, u8 scales[12] (eight 6-bit scales and eight 6-bit
 * mins, packed as `get_scale_min_k4` unpacks them), u8 qs[128]. Each 64 values share 32 bytes of qs:
 * the low nibbles are sub-block 2k, the high nibbles sub-block 2k+1; x = d·sc·q − dmin·m.
 */
function q4_K(b: Uint8Array, count: number, out: Float32Array, o: number): void {
  const sm = (j: number, s: number): [number, number] =>
    j < 4
      ? [b[s + j] & 63, b[s + j + 4] & 63]
      : [(b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
  for (let blk = 0, p = 0; blk < count / 256; blk++, p += 144) {
    const d = half(b, p);
    const dmin = half(b, p + 2);
    const s = p + 4;
    let q = p + 16;
    for (let j = 0; j < 8; j += 2, q += 32) {
      const [sc1, m1] = sm(j, s);
      const [sc2, m2] = sm(j + 1, s);
      const d1 = d * sc1, n1 = dmin * m1, d2 = d * sc2, n2 = dmin * m2;
      for (let l = 0; l < 32; l++) out[o + l] = d1 * (b[q + l] & 15) - n1;
      for (let l = 0; l < 32; l++) out[o + 32 + l] = d2 * (b[q + l] >> 4) - n2;
      o += 64;
    }
  }
}

/**
 * block_q6_K (210 B, 256 values): u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits), i8 scales[16],
 * f16 d. Per half-block of 128: value l+32k takes the nibble and 2-bit pair that
 * `dequantize_row_q6_K` names; x = d·scale·(q − 32), one scale per 16 values.
 */
function q6_K(b: Uint8Array, count: number, out: Float32Array, o: number): void {
  for (let blk = 0, p = 0; blk < count / 256; blk++, p += 210) {
    const d = half(b, p + 208);
    for (let n = 0; n < 2; n++, o += 128) {
      const ql = p + 64 * n;
      const qh = p + 128 + 32 * n;
      const sc = p + 192 + 8 * n;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const h = b[qh + l];
        const q1 = ((b[ql + l] & 15) | ((h & 3) << 4)) - 32;
        const q2 = ((b[ql + l + 32] & 15) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((b[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((b[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        const s = (i: number) => (b[sc + is + i] << 24) >> 24;
        out[o + l] = d * s(0) * q1;
        out[o + l + 32] = d * s(2) * q2;
        out[o + l + 64] = d * s(4) * q3;
        out[o + l + 96] = d * s(6) * q4;
      }
    }
  }
}
