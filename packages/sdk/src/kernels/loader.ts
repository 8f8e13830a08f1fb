import { FlashError } from "../errors.js";
import { rowBytes } from "../format/rows.js";
import { withSharedMemory } from "./shared-memory.js";
import { KERNELS_WASM_BASE64 } from "./wasm-bytes.js";

/** Raw exports of the kernels module (see crates/kernels/ABI.md). Pointers are byte offsets. */
export interface KernelExports {
  memory: WebAssembly.Memory;
  fl_alloc(size: number, align: number): number;
  fl_free(ptr: number): void;
  fl_heap_used(): number;
  matvec_f32(out: number, w: number, x: number, rows: number, cols: number): void;
  matvec_f32_scalar(out: number, w: number, x: number, rows: number, cols: number): void;
  matvec_t_f32(out: number, w: number, x: number, rows: number, cols: number): void;
  matvec_q8(out: number, w: number, scales: number, x: number, xq: number, rows: number, cols: number): void;
  /** IEEE half weights, `2·cols` bytes per row (any alignment). */
  matvec_f16(out: number, w: number, x: number, rows: number, cols: number): void;
  /** ggml Q8_0 rows (`cols` a multiple of 32, 34 bytes per 32 values); `xq`: {@link xqScratchBytes} bytes. */
  matvec_q8_0(out: number, w: number, x: number, xq: number, rows: number, cols: number): void;
  /** ggml Q4_0 rows (`cols` a multiple of 32, 18 bytes per 32 values); `xq`: {@link xqScratchBytes} bytes. */
  matvec_q4_0(out: number, w: number, x: number, xq: number, rows: number, cols: number): void;
  rmsnorm(out: number, x: number, w: number, n: number, eps: number): void;
  layernorm(out: number, x: number, w: number, b: number, n: number, eps: number): void;
  softmax(x: number, n: number): void;
  silu(x: number, n: number): void;
  relu(x: number, n: number): void;
  gelu(x: number, n: number): void;
  /** FATReLU in place: `x` if `x > threshold`, else 0. */
  fatrelu(x: number, n: number, threshold: number): void;
  mul(out: number, a: number, b: number, n: number): void;
  add(out: number, a: number, b: number, n: number): void;
  argmax(x: number, n: number): number;
  rope(v: number, nHeads: number, headSize: number, cos: number, sin: number, neox: number): void;
  attention(
    out: number, q: number, kCache: number, vCache: number, att: number,
    pos: number, nHeads: number, nKvHeads: number, headSize: number, kvStride: number,
  ): void;
  ffn_bundled(
    out: number, x: number, dim: number, slots: number, slotStride: number, slotIds: number, n: number,
    dtype: number, gated: number, act: number, xq: number, hOut: number, accumulate: number, actParam: number,
  ): void;
  /**
   * CRC-32 of `len` bytes at `ptr`, continuing from `crcIn` (0 for a fresh start); the same result as
   * `format/crc32.ts` `crc32`. Returned as i32: read it with `>>> 0`.
   */
  crc32(ptr: number, len: number, crcIn: number): number;
  /** For benchmarks: wrapping sum of the u32 words of `len` bytes (a plain memory-read floor). */
  read_floor(ptr: number, len: number): number;
}

/** Weight type codes of `ffn_bundled`'s `dtype` argument (crates/kernels/ABI.md). */
export const KernelDtype = { f32: 0, q8: 1, f16: 2, q8_0: 3, q4_0: 4 } as const;
export type KernelDtypeName = keyof typeof KernelDtype;

/** Bytes of one row of `cols` values of a weight type: the container's `rowBytes`, one definition. */
export const kernelRowBytes: (dtype: KernelDtypeName, cols: number) => number = rowBytes;

/**
 * Bytes of the `xq` scratch that `matvec_q8`, `matvec_q8_0`, `matvec_q4_0` and `ffn_bundled` need
 * for vectors of up to `cols` values: `(cols + 8)·2` covers every weight type (q8: i16 per value
 * padded to 8; q8_0/q4_0: one 64-byte record per 32 values).
 */
export function xqScratchBytes(cols: number): number {
  return (cols + 8) * 2;
}

/** Activation codes of the kernels' ABI; `ffn_bundled`'s `actParam` is fatrelu's threshold (else unused). */
export const Act = { relu: 0, silu: 1, gelu: 2, fatrelu: 3, drelu: 4 } as const;
export type ActivationName = keyof typeof Act;

/** A region of WASM memory owned by the SDK; `ptr` is its byte offset. */
export interface WasmBlock {
  readonly ptr: number;
  readonly bytes: number;
}

/**
 * The instantiated kernels and the one linear memory that holds a model's weights, KV cache, neuron
 * caches and scratch. Typed-array views are created on demand because `memory.grow` detaches old ones.
 */
export class Kernels {
  readonly k: KernelExports;
  private live = new Set<number>();
  private constructor(exports: KernelExports) {
    this.k = exports;
  }

  /**
   * Instantiates the kernels from the bytes embedded in the SDK (or from given bytes). With
   * `sharedMemory`, the linear memory is a shared one (its buffer a SharedArrayBuffer, reserved up to
   * 4 GiB of address space), so another thread can read weights into it while this one computes; it
   * needs a host that allows SharedArrayBuffer (Node; browsers only when cross-origin isolated).
   */
  static async load(bytes?: BufferSource, options: { sharedMemory?: boolean } = {}): Promise<Kernels> {
    let code: BufferSource = bytes ?? decodeBase64(KERNELS_WASM_BASE64);
    if (options.sharedMemory) {
      const view = ArrayBuffer.isView(code) ? new Uint8Array(code.buffer, code.byteOffset, code.byteLength) : new Uint8Array(code);
      code = withSharedMemory(view);
    }
    const module = await WebAssembly.compile(code);
    const instance = await WebAssembly.instantiate(module, {});
    return new Kernels(instance.exports as unknown as KernelExports);
  }

  /** Whether the linear memory is shared (its buffer a SharedArrayBuffer). */
  get sharedMemory(): boolean {
    return typeof SharedArrayBuffer !== "undefined" && this.k.memory.buffer instanceof SharedArrayBuffer;
  }

  /** Current size of the linear memory in bytes (what the model costs in WASM memory). */
  get memoryBytes(): number {
    return this.k.memory.buffer.byteLength;
  }

  /** Bytes held by live allocations. */
  get heapUsed(): number {
    return this.k.fl_heap_used() >>> 0;
  }

  /** Allocates `bytes` bytes aligned to `align` (≥16); throws OUT_OF_MEMORY rather than returning 0. */
  alloc(bytes: number, align = 16): WasmBlock {
    // wasm32 pointers are u32 but come back as i32: above 2 GiB they would read as negative.
    const ptr = this.k.fl_alloc(Math.max(bytes, 1), align) >>> 0;
    if (ptr === 0) {
      throw new FlashError("OUT_OF_MEMORY", `WASM memory cannot grow by ${bytes} bytes (now ${this.memoryBytes} bytes; wasm32 stops at 4 GiB)`, {
        bytes,
        memoryBytes: this.memoryBytes,
      });
    }
    this.live.add(ptr);
    return { ptr, bytes };
  }

  /** Frees a block from {@link alloc}; freeing twice is a bug and throws. */
  free(block: WasmBlock | number): void {
    const ptr = typeof block === "number" ? block : block.ptr;
    if (!this.live.delete(ptr)) throw new FlashError("BAD_ARGUMENT", `double free or foreign pointer ${ptr}`);
    this.k.fl_free(ptr);
  }

  /** Float32 view of `n` floats at `ptr` (valid until the next memory growth). */
  f32(ptr: number, n: number): Float32Array {
    return new Float32Array(this.k.memory.buffer, ptr, n);
  }
  /** Byte view of `n` bytes at `ptr` (valid until the next memory growth). */
  u8(ptr: number, n: number): Uint8Array {
    return new Uint8Array(this.k.memory.buffer, ptr, n);
  }
  /** Uint32 view of `n` words at `ptr` (valid until the next memory growth). */
  u32(ptr: number, n: number): Uint32Array {
    return new Uint32Array(this.k.memory.buffer, ptr, n);
  }
  /** Int8 view. */
  i8(ptr: number, n: number): Int8Array {
    return new Int8Array(this.k.memory.buffer, ptr, n);
  }

  /** Allocates and fills a float buffer. */
  allocF32(data: ArrayLike<number> | number): WasmBlock {
    const n = typeof data === "number" ? data : data.length;
    const b = this.alloc(n * 4);
    if (typeof data !== "number") this.f32(b.ptr, n).set(data);
    return b;
  }
}

function decodeBase64(s: string): Uint8Array<ArrayBuffer> {
  // atob exists in Node ≥16 and in every browser and worker; no Buffer (the SDK never imports Node APIs).
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
