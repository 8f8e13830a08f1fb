import { rowBytes } from "./rows.js";
import type { TensorEntry } from "./types.js";

/**
 * Column-blocked tensors (docs/FORMAT.md §3.2.1): a `[rows, cols]` matrix stored as `cols / block`
 * blocks, each `[rows, block]` row-major. The output projection `wo` is stored with one block per
 * attention head, so the columns of a range of heads are one contiguous span of the file. These
 * helpers move whole encoded rows between that order and row-major; every dtype's row is a byte
 * string whose column slices at block boundaries are byte slices (q8 scales are per row and stored
 * apart, unchanged).
 */

/** Bytes of one row of one block, and of one whole block, of a column-blocked tensor. */
export function columnBlockBytes(t: TensorEntry): { rows: number; blockRowBytes: number; blockBytes: number; blocks: number } {
  const cols = t.shape[t.shape.length - 1];
  const rows = t.shape.reduce((a, b) => a * b, 1) / cols;
  const block = t.columnBlock ?? cols;
  const blockRowBytes = rowBytes(t.dtype, block);
  return { rows, blockRowBytes, blockBytes: rows * blockRowBytes, blocks: cols / block };
}

/**
 * Byte span (relative to the resident section) holding blocks `[first, first + count)` of a
 * column-blocked tensor: the columns `[first·block, (first + count)·block)` of every row.
 */
export function columnBlockSpan(t: TensorEntry, first: number, count: number): { offset: number; length: number } {
  const { blockBytes } = columnBlockBytes(t);
  return { offset: t.offset + first * blockBytes, length: count * blockBytes };
}

/**
 * Rearranges `count` consecutive blocks (`count · rows · blockRowBytes` bytes, block-major as stored)
 * into `rows` row-major rows of `count · blockRowBytes` bytes (what the matvec kernels read), writing
 * `dst`. `src` and `dst` must not overlap.
 */
export function blocksToRows(src: Uint8Array, dst: Uint8Array, rows: number, blockRowBytes: number, count: number): void {
  const width = count * blockRowBytes;
  for (let b = 0; b < count; b++) {
    const from = b * rows * blockRowBytes;
    const to = b * blockRowBytes;
    for (let r = 0; r < rows; r++) dst.set(src.subarray(from + r * blockRowBytes, from + (r + 1) * blockRowBytes), to + r * width);
  }
}

/** The inverse of {@link blocksToRows}: row-major rows of `count` blocks into block-major order. */
export function rowsToBlocks(src: Uint8Array, dst: Uint8Array, rows: number, blockRowBytes: number, count: number): void {
  const width = count * blockRowBytes;
  for (let b = 0; b < count; b++) {
    const to = b * rows * blockRowBytes;
    const from = b * blockRowBytes;
    for (let r = 0; r < rows; r++) dst.set(src.subarray(from + r * width, from + r * width + blockRowBytes), to + r * blockRowBytes);
  }
}
