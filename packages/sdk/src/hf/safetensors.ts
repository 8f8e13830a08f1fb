import { FlashError, FormatError, throwIfAborted } from "../errors.js";
import type { FlashSource } from "../source.js";
import { HOST_LITTLE_ENDIAN } from "../format/bytes.js";
import { convertToF32, DTYPE_BYTES } from "./dtype.js";
import { MAX_HEADER_BYTES, parseSafetensorsHeader } from "./safetensors-header.js";
import type { TensorInfo } from "./safetensors-header.js";

/**
 * Streaming safetensors reading over any {@link FlashSource}: opening reads the 8-byte header length
 * and the JSON header only; each {@link TensorReader.readTensor} reads one tensor's bytes. A 14 GB
 * checkpoint is thus converted tensor by tensor, never held in memory whole.
 */

/** Options of {@link TensorReader.readTensor}. */
export interface ReadTensorOptions {
  signal?: AbortSignal;
  /** Where to put the values (e.g. a view of WASM memory); at least the tensor's element count. Default: a new array. */
  target?: Float32Array;
}

/** Read access to named tensors, whether from one safetensors file or several shards. */
export interface TensorReader {
  /** Tensor names in file order (shard order, then file order, for sharded checkpoints). */
  names(): string[];
  has(name: string): boolean;
  /** Dtype, shape and location of a tensor, or undefined when there is no such tensor. */
  info(name: string): TensorInfo | undefined;
  /**
   * Reads one tensor and widens it to f32 (row-major, `shape` order). Rejects with BAD_ARGUMENT for an
   * unknown name, READ_FAILED/ABORTED from the source.
   */
  readTensor(name: string, options?: ReadTensorOptions): Promise<Float32Array>;
  /** Closes the underlying source(s). */
  close(): Promise<void>;
}

/** Options of {@link openSafetensors}. */
export interface OpenSafetensorsOptions {
  /** Name used in error messages and {@link TensorInfo.file}. Default `"model.safetensors"`. */
  name?: string;
  signal?: AbortSignal;
  /** Largest scratch buffer for F16/BF16 conversion, in bytes. Default 16 MiB. */
  chunkBytes?: number;
}

/** An opened safetensors file. */
export interface SafetensorsFile extends TensorReader {
  readonly name: string;
  readonly source: FlashSource;
  /** Byte offset where the data region starts (8 + header length). */
  readonly dataStart: number;
}

const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024;

/**
 * Opens a safetensors file: reads its header (two small reads) and validates every entry (see
 * {@link parseSafetensorsHeader}). Throws FormatError: TRUNCATED (shorter than 8 bytes, or the header
 * runs past the end), BAD_HEADER (header length above 100 MiB, not UTF-8 JSON, malformed entries,
 * overlaps), UNSUPPORTED, SIZE_MISMATCH, OUT_OF_BOUNDS.
 */
export async function openSafetensors(source: FlashSource, options: OpenSafetensorsOptions = {}): Promise<SafetensorsFile> {
  const name = options.name ?? "model.safetensors";
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
    throw new FlashError("BAD_ARGUMENT", `chunkBytes must be a positive integer, got ${chunkBytes}`, { actual: chunkBytes });
  }
  const size = source.byteLength;
  if (size < 8) {
    throw new FormatError("TRUNCATED", `${name}: ${size} bytes, shorter than the 8-byte safetensors header length`, { file: name, expected: 8, actual: size });
  }
  const lenBytes = new Uint8Array(8);
  await source.read([{ offset: 0, length: 8, target: lenBytes }], options.signal);
  const view = new DataView(lenBytes.buffer);
  // u64 LE; read as two halves so a huge value is reported rather than rounded.
  const headerLength = view.getUint32(4, true) * 2 ** 32 + view.getUint32(0, true);
  if (headerLength > MAX_HEADER_BYTES || headerLength < 2) {
    throw new FormatError("BAD_HEADER", `${name}: safetensors header length ${headerLength} is outside 2 … ${MAX_HEADER_BYTES} bytes`, {
      file: name,
      expected: MAX_HEADER_BYTES,
      actual: headerLength,
    });
  }
  if (8 + headerLength > size) {
    throw new FormatError("TRUNCATED", `${name}: the safetensors header needs ${8 + headerLength} bytes but the file has ${size}`, {
      file: name,
      expected: 8 + headerLength,
      actual: size,
    });
  }
  const headerBytes = new Uint8Array(headerLength);
  await source.read([{ offset: 8, length: headerLength, target: headerBytes }], options.signal);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new FormatError("BAD_HEADER", `${name}: the safetensors header is not valid UTF-8`, { file: name });
  }
  const dataStart = 8 + headerLength;
  const tensors = parseSafetensorsHeader(text, name, dataStart, size - dataStart);
  return new SafetensorsReader(name, source, dataStart, tensors, chunkBytes);
}

class SafetensorsReader implements SafetensorsFile {
  private readonly byName = new Map<string, TensorInfo>();
  constructor(
    readonly name: string,
    readonly source: FlashSource,
    readonly dataStart: number,
    tensors: TensorInfo[],
    private readonly chunkBytes: number,
  ) {
    for (const t of tensors) this.byName.set(t.name, t);
  }
  names(): string[] {
    return [...this.byName.keys()];
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  info(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }
  async readTensor(name: string, options: ReadTensorOptions = {}): Promise<Float32Array> {
    const t = this.byName.get(name);
    if (!t) throw new FlashError("BAD_ARGUMENT", `${this.name}: no tensor named "${name}"`, { file: this.name, tensor: name });
    return readInfo(this.source, t, options, this.chunkBytes);
  }
  close(): Promise<void> {
    return this.source.close();
  }
}

/** Reads the tensor `t` from `source` into f32. */
async function readInfo(source: FlashSource, t: TensorInfo, options: ReadTensorOptions, chunkBytes = DEFAULT_CHUNK_BYTES): Promise<Float32Array> {
  const elementBytes = DTYPE_BYTES[t.dtype];
  const count = t.byteLength / elementBytes;
  const out = options.target ? options.target.subarray(0, count) : new Float32Array(count);
  if (out.length < count) {
    throw new FlashError("BAD_ARGUMENT", `${t.file}: tensor "${t.name}" has ${count} elements but the target holds ${out.length}`, {
      tensor: t.name,
      expected: count,
      actual: out.length,
    });
  }
  if (count === 0) return out;
  if (t.dtype === "F32" && HOST_LITTLE_ENDIAN) {
    // Straight into the output's bytes: no scratch, one request (backends split large reads themselves).
    const target = new Uint8Array(out.buffer, out.byteOffset, t.byteLength);
    await source.read([{ offset: t.offset, length: t.byteLength, target }], options.signal);
    return out;
  }
  // Half types go through a bounded scratch buffer, so widening a 1 GB bf16 embedding costs
  // `chunkBytes` extra, not another 1 GB.
  const step = Math.max(1, Math.floor(chunkBytes / elementBytes));
  const scratch = new Uint8Array(Math.min(count, step) * elementBytes);
  for (let first = 0; first < count; first += step) {
    throwIfAborted(options.signal);
    const n = Math.min(step, count - first);
    const buf = scratch.subarray(0, n * elementBytes);
    await source.read([{ offset: t.offset + first * elementBytes, length: buf.byteLength, target: buf }], options.signal);
    convertToF32(t.dtype, buf, n, out, first);
  }
  return out;
}
