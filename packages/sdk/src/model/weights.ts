import { FlashError } from "../errors.js";
import type { Kernels, WasmBlock } from "../kernels/loader.js";
import { decodeRows, isRowDtype, rowBytes } from "../format/rows.js";
import type { RowDtype } from "../format/rows.js";
import type { Dtype } from "../format/types.js";

/** A row-major weight matrix in WASM memory: f32, int8 with one f32 scale per row, or f16/q8_0/q4_0 rows. */
export interface Matrix {
  readonly dtype: Dtype;
  readonly rows: number;
  readonly cols: number;
  /** Weights: `rows·cols` f32 or i8. */
  readonly ptr: number;
  /** q8 only: `rows` f32 scales. */
  readonly scalesPtr: number;
}

/** Host-side tensor data before upload: f32, q8 (int8 + per-row scales), or rows already in f16/q8_0/q4_0. */
export type TensorData = Float32Array | { q: Int8Array; scales: Float32Array } | { dtype: RowDtype; raw: Uint8Array };

/**
 * Resident tensors of at least this many bytes are placed so that their address agrees with their
 * offset in the file modulo {@link DIRECT_PLACEMENT_ALIGN}: an O_DIRECT source (page-aligned reads)
 * then reads them straight into WASM memory instead of through a bounce buffer and a copy.
 */
export const DIRECT_PLACEMENT_MIN_BYTES = 1 << 20;
/** The O_DIRECT unit: node-io's `BLOCK` (the page size, which covers 512-byte and 4Kn devices). */
export const DIRECT_PLACEMENT_ALIGN = 4096;

/**
 * Extra WASM bytes a tensor of `dataBytes` takes for that placement: the block is `ALIGN` bytes longer
 * (the data starts up to `ALIGN − 1` bytes into it) and aligned to `ALIGN` (up to `ALIGN` bytes of gap
 * before it). Memory plans charge it, so the budget still bounds the memory.
 */
export function directPlacementSlack(dataBytes: number): number {
  return dataBytes >= DIRECT_PLACEMENT_MIN_BYTES ? 2 * DIRECT_PLACEMENT_ALIGN : 0;
}

/**
 * The resident weights of a model, uploaded once into WASM memory and freed together. Each tensor
 * is its own block so a model's footprint is the sum of what it keeps.
 */
export class WeightStore {
  private readonly blocks: WasmBlock[] = [];
  private readonly matrices = new Map<string, Matrix>();
  constructor(private readonly kernels: Kernels) {}

  /** Bytes of WASM memory the uploaded tensors occupy. */
  get bytes(): number {
    return this.blocks.reduce((s, b) => s + b.bytes, 0);
  }

  /** Copies a tensor into WASM memory under `name`, shaped `[rows][cols]` (a vector is `[1][n]`). */
  upload(name: string, data: TensorData, rows: number, cols: number): Matrix {
    const k = this.kernels;
    let m: Matrix;
    if (data instanceof Float32Array) {
      if (data.length !== rows * cols) throw wrongSize(name, rows * cols, data.length);
      const b = k.alloc(data.length * 4);
      this.blocks.push(b);
      k.f32(b.ptr, data.length).set(data);
      m = { dtype: "f32", rows, cols, ptr: b.ptr, scalesPtr: 0 };
    } else if ("raw" in data) {
      const need = rows * rowBytes(data.dtype, cols);
      if (data.raw.byteLength !== need) throw new FlashError("WRONG_DIMS", `tensor "${name}": ${rows}×${cols} ${data.dtype} needs ${need} bytes, got ${data.raw.byteLength}`, { name });
      const b = k.alloc(need);
      this.blocks.push(b);
      k.u8(b.ptr, need).set(data.raw);
      m = { dtype: data.dtype, rows, cols, ptr: b.ptr, scalesPtr: 0 };
    } else {
      if (data.q.length !== rows * cols || data.scales.length !== rows) throw wrongSize(name, rows * cols, data.q.length);
      const b = k.alloc(data.q.length);
      const s = k.alloc(rows * 4);
      this.blocks.push(b, s);
      k.i8(b.ptr, data.q.length).set(data.q);
      k.f32(s.ptr, rows).set(data.scales);
      m = { dtype: "q8", rows, cols, ptr: b.ptr, scalesPtr: s.ptr };
    }
    this.matrices.set(name, m);
    return m;
  }

  /**
   * Allocates a tensor's blocks under `name` and returns them unfilled, for a caller that reads the
   * values straight into WASM memory (no host copy). Fill before use; views die when memory grows.
   */
  reserve(name: string, dtype: Dtype, rows: number, cols: number, fileOffset?: number): Matrix {
    const k = this.kernels;
    let m: Matrix;
    if (dtype !== "q8") {
      // f32, and the row encodings (f16, q8_0, q4_0): rows of rowBytes each, nothing apart.
      const ptr = this.placed(rows * rowBytes(dtype, cols), fileOffset);
      m = { dtype, rows, cols, ptr, scalesPtr: 0 };
    } else {
      const ptr = this.placed(rows * cols, fileOffset);
      const s = k.alloc(rows * 4);
      this.blocks.push(s);
      m = { dtype, rows, cols, ptr, scalesPtr: s.ptr };
    }
    this.matrices.set(name, m);
    return m;
  }

  /**
   * A new block for `bytes` of data; returns where the data starts. When the data will be read from
   * `fileOffset` and is large ({@link directPlacementSlack}), that start agrees with the offset modulo
   * {@link DIRECT_PLACEMENT_ALIGN}, so an O_DIRECT read can land in place.
   */
  private placed(bytes: number, fileOffset: number | undefined): number {
    if (fileOffset === undefined || directPlacementSlack(bytes) === 0) {
      const b = this.kernels.alloc(bytes);
      this.blocks.push(b);
      return b.ptr;
    }
    const b = this.kernels.alloc(bytes + DIRECT_PLACEMENT_ALIGN, DIRECT_PLACEMENT_ALIGN);
    this.blocks.push(b);
    return b.ptr + (fileOffset % DIRECT_PLACEMENT_ALIGN);
  }

  /** Registers another name for an uploaded tensor (a shared classifier is the embedding). */
  alias(name: string, existing: string): void {
    this.matrices.set(name, this.get(existing));
  }

  has(name: string): boolean {
    return this.matrices.has(name);
  }

  get(name: string): Matrix {
    const m = this.matrices.get(name);
    if (!m) throw new FlashError("BAD_MANIFEST", `missing tensor "${name}"`, { name });
    return m;
  }

  /** A vector tensor (norm weights, biases) as a pointer to f32 values; q8 vectors are not used. */
  vector(name: string): number {
    const m = this.get(name);
    if (m.dtype !== "f32") throw new FlashError("UNSUPPORTED", `tensor "${name}" must be f32`);
    return m.ptr;
  }

  /** Frees every tensor. The store is empty afterwards. */
  dispose(): void {
    for (const b of this.blocks) this.kernels.free(b);
    this.blocks.length = 0;
    this.matrices.clear();
  }
}

/** `out = M·x` for either dtype. `xq` is i16 scratch of at least `M.cols` rounded up to 8 entries (q8 only). */
export function matvec(k: Kernels, out: number, m: Matrix, x: number, xq: number): void {
  switch (m.dtype) {
    case "f32":
      k.k.matvec_f32(out, m.ptr, x, m.rows, m.cols);
      return;
    case "q8":
      k.k.matvec_q8(out, m.ptr, m.scalesPtr, x, xq, m.rows, m.cols);
      return;
    case "f16":
      k.k.matvec_f16(out, m.ptr, x, m.rows, m.cols);
      return;
    case "q8_0":
      k.k.matvec_q8_0(out, m.ptr, x, xq, m.rows, m.cols);
      return;
    case "q4_0":
      k.k.matvec_q4_0(out, m.ptr, x, xq, m.rows, m.cols);
      return;
  }
}

/** Copies row `row` of `M` into `out` as f32 (the embedding lookup). */
export function copyRow(k: Kernels, out: number, m: Matrix, row: number): void {
  const dst = k.f32(out, m.cols);
  if (m.dtype === "f32") {
    dst.set(k.f32(m.ptr + row * m.cols * 4, m.cols));
  } else if (isRowDtype(m.dtype)) {
    const n = rowBytes(m.dtype, m.cols);
    decodeRows(m.dtype, k.u8(m.ptr + row * n, n).slice(), m.cols, dst);
  } else {
    const q = k.i8(m.ptr + row * m.cols, m.cols);
    const s = k.f32(m.scalesPtr + row * 4, 1)[0];
    for (let i = 0; i < m.cols; i++) dst[i] = q[i] * s;
  }
}

function wrongSize(name: string, expected: number, actual: number): FlashError {
  return new FlashError("WRONG_DIMS", `tensor "${name}": expected ${expected} values, got ${actual}`, { name, expected, actual });
}

/** Transposes a row-major `[rows][cols]` f32 matrix (for the down projection's column-per-neuron form). */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}
