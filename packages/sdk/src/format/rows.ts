import { FlashError } from "../errors.js";
import { GgmlType } from "../gguf/constants.js";
import { dequantize } from "../gguf/dequant.js";
import { quantize } from "../gguf/quantize.js";
import type { Dtype } from "./types.js";

/**
 * Row encodings of the weight types stored as they are laid out in memory (crates/kernels/ABI.md,
 * "Weight types"): f16 (IEEE half), and ggml's q8_0 / q4_0 blocks of 32 values along the row, byte for
 * byte as in a GGUF file, so such tensors are copied from GGUF without re-quantizing.
 */

/** The weight types whose rows are self-contained byte strings (no scale stored apart). */
export type RowDtype = "f16" | "q8_0" | "q4_0";

const GGML: Record<RowDtype, number> = { f16: GgmlType.F16, q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0 };

/** True for f16, q8_0 and q4_0. */
export function isRowDtype(d: Dtype): d is RowDtype {
  return d === "f16" || d === "q8_0" || d === "q4_0";
}

/** True for the block types, whose rows must be a multiple of 32 values. */
export function isBlockDtype(d: Dtype): d is "q8_0" | "q4_0" {
  return d === "q8_0" || d === "q4_0";
}

/** The ggml type id of a row dtype (for verbatim GGUF copies). */
export function ggmlTypeOf(d: RowDtype): number {
  return GGML[d];
}

/** Bytes of one row of `cols` values (q8: the int8 values only; its f32 scale is stored apart). */
export function rowBytes(dtype: Dtype, cols: number): number {
  switch (dtype) {
    case "f32": return 4 * cols;
    case "q8": return cols;
    case "f16": return 2 * cols;
    case "q8_0": return (cols / 32) * 34;
    case "q4_0": return (cols / 32) * 18;
  }
}

/** Throws BAD_ARGUMENT when `cols` cannot be stored as `dtype` (block types need whole blocks of 32). */
export function checkRowLength(dtype: Dtype, cols: number, what: string): void {
  if (isBlockDtype(dtype) && cols % 32 !== 0) {
    throw new FlashError("BAD_ARGUMENT", `${what}: rows of ${cols} values cannot be stored as ${dtype} (blocks of 32 values); use f16, q8 or f32`, { dtype, cols });
  }
}

/** Encodes f32 values (whole rows) as `dtype` the way ggml's reference quantizers do. */
export function encodeRows(dtype: RowDtype, values: Float32Array): Uint8Array {
  return quantize(GGML[dtype], values);
}

/** Decodes `count` values of `dtype` from `bytes` into `out[outStart..]`. */
export function decodeRows(dtype: RowDtype, bytes: Uint8Array, count: number, out: Float32Array, outStart = 0): void {
  dequantize(GGML[dtype], bytes, count, out, outStart);
}
