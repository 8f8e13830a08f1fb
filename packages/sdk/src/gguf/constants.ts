/**
 * GGUF constants, from ggml-org/ggml `docs/gguf.md` (file layout, metadata value types) and
 * `src/ggml-common.h` / `include/ggml.h` (tensor type ids and block sizes).
 */

/** "GGUF" as the first four bytes (read as a little-endian u32: 0x46554747). */
export const GGUF_MAGIC = 0x46554747;
/**
 * "PWRI": PowerInfer's GGUF files (SJTU-IPADS/PowerInfer, `convert.py` and `convert-hf-to-powerinfer-gguf.py`
 * overwrite the magic after writing; `ggml.c` `gguf_init_from_file` then turns on sparse inference).
 * Everything after the magic is GGUF.
 */
export const POWERINFER_MAGIC = 0x49525750;
/** Versions this reader accepts: 2 (u64 counts) and 3 (adds big-endian files, which we refuse). */
export const GGUF_VERSIONS = [2, 3] as const;
/** `general.alignment` when the file does not set it. */
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (`enum gguf_metadata_value_type`). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

/** Bytes of each fixed-size value type (strings and arrays are variable). */
export const VALUE_BYTES: Readonly<Record<number, number>> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** The ggml tensor types flashllm reads (`enum ggml_type`). Other ids are reported by name when known. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q8_0: 8,
  Q4_K: 12,
  Q6_K: 14,
  BF16: 30,
} as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

/** Block geometry of a tensor type: `blockSize` values stored in `typeSize` bytes. */
export interface GgmlTypeInfo {
  name: string;
  blockSize: number;
  typeSize: number;
}

/** Every type the reader can size (so it can validate offsets), dequantizable or not. */
export const GGML_TYPES: Readonly<Record<number, GgmlTypeInfo>> = {
  0: { name: "F32", blockSize: 1, typeSize: 4 },
  1: { name: "F16", blockSize: 1, typeSize: 2 },
  2: { name: "Q4_0", blockSize: 32, typeSize: 18 },
  3: { name: "Q4_1", blockSize: 32, typeSize: 20 },
  6: { name: "Q5_0", blockSize: 32, typeSize: 22 },
  7: { name: "Q5_1", blockSize: 32, typeSize: 24 },
  8: { name: "Q8_0", blockSize: 32, typeSize: 34 },
  9: { name: "Q8_1", blockSize: 32, typeSize: 36 },
  10: { name: "Q2_K", blockSize: 256, typeSize: 84 },
  11: { name: "Q3_K", blockSize: 256, typeSize: 110 },
  12: { name: "Q4_K", blockSize: 256, typeSize: 144 },
  13: { name: "Q5_K", blockSize: 256, typeSize: 176 },
  14: { name: "Q6_K", blockSize: 256, typeSize: 210 },
  15: { name: "Q8_K", blockSize: 256, typeSize: 292 },
  24: { name: "I8", blockSize: 1, typeSize: 1 },
  25: { name: "I16", blockSize: 1, typeSize: 2 },
  26: { name: "I32", blockSize: 1, typeSize: 4 },
  27: { name: "I64", blockSize: 1, typeSize: 8 },
  28: { name: "F64", blockSize: 1, typeSize: 8 },
  30: { name: "BF16", blockSize: 1, typeSize: 2 },
};

/** Types {@link dequantize} turns into f32. */
export const DEQUANTIZABLE: ReadonlySet<number> = new Set([0, 1, 2, 3, 8, 12, 14, 30]);

/** Name of a ggml type id, for messages. */
export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? `type ${type}`;
}

/** Bounds that keep a hostile header from allocating or looping without end. */
export const GGUF_LIMITS = {
  tensors: 1 << 16,
  metadata: 1 << 16,
  /** Elements of one metadata array (a 256k vocabulary has 256k strings). */
  arrayLength: 1 << 24,
  /** Bytes of one string (chat templates reach tens of KiB). */
  stringBytes: 1 << 24,
  /** Bytes of the whole header (metadata + tensor infos). */
  headerBytes: 1 << 30,
  /** Dimensions of a tensor. */
  dims: 4,
  /** Nesting of arrays of arrays. */
  arrayDepth: 2,
} as const;
