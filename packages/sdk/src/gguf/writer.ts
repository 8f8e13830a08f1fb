import { FlashError } from "../errors.js";
import type { FlmSink } from "../format/sink.js";
import { GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, POWERINFER_MAGIC, GgmlType, GgufValueType, ggmlTypeName } from "./constants.js";
import { typeBytes } from "./dequant.js";
import { quantize } from "./quantize.js";
import type { GgufKv, GgufValue } from "./reader.js";

/**
 * A small streaming GGUF (v3) writer for tests and benchmarks: the header is laid out from the
 * declaration, then tensors are written in declared order, each whole or in pieces (`write` appends),
 * so a 7 GB file is written with memory for one piece. F32 and F16 tensors and Q8_0/Q4_0 blocks
 * (quantized as ggml's reference quantizers do), or raw bytes already in the tensor's type.
 */

/** A tensor to declare: `dims` fastest-varying first, as GGUF stores them. */
export interface GgufTensorDecl {
  name: string;
  dims: number[];
  type: number;
}

const enc = new TextEncoder();

/** Metadata entry helpers: `kv.u32("llama.block_count", 5)`. */
export const kv = {
  str: (key: string, value: string): GgufKv => ({ key, type: GgufValueType.STRING, value }),
  u32: (key: string, value: number): GgufKv => ({ key, type: GgufValueType.UINT32, value }),
  i32: (key: string, value: number): GgufKv => ({ key, type: GgufValueType.INT32, value }),
  f32: (key: string, value: number): GgufKv => ({ key, type: GgufValueType.FLOAT32, value }),
  bool: (key: string, value: boolean): GgufKv => ({ key, type: GgufValueType.BOOL, value }),
  strs: (key: string, value: string[]): GgufKv => ({ key, type: GgufValueType.ARRAY, arrayType: GgufValueType.STRING, value }),
  f32s: (key: string, value: number[]): GgufKv => ({ key, type: GgufValueType.ARRAY, arrayType: GgufValueType.FLOAT32, value }),
  i32s: (key: string, value: number[]): GgufKv => ({ key, type: GgufValueType.ARRAY, arrayType: GgufValueType.INT32, value }),
};

/** Serialises GGUF header pieces into a growing buffer. */
class HeaderBytes {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.byteLength) return;
    const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void { this.room(1); this.view.setUint8(this.length, v); this.length += 1; }
  i8(v: number): void { this.room(1); this.view.setInt8(this.length, v); this.length += 1; }
  u16(v: number): void { this.room(2); this.view.setUint16(this.length, v, true); this.length += 2; }
  i16(v: number): void { this.room(2); this.view.setInt16(this.length, v, true); this.length += 2; }
  u32(v: number): void { this.room(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.room(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.room(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  f64(v: number): void { this.room(8); this.view.setFloat64(this.length, v, true); this.length += 8; }
  u64(v: number | bigint): void { this.room(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  i64(v: number | bigint): void { this.room(8); this.view.setBigInt64(this.length, BigInt(v), true); this.length += 8; }
  str(s: string): void {
    const b = enc.encode(s);
    this.u64(b.byteLength);
    this.room(b.byteLength);
    this.buf.set(b, this.length);
    this.length += b.byteLength;
  }
  bytes(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function writeValue(h: HeaderBytes, type: number, v: GgufValue, arrayType: number | undefined, key: string): void {
  const bad = () => {
    throw new FlashError("BAD_ARGUMENT", `GGUF writer: metadata ${key} value ${String(v).slice(0, 40)} does not fit type ${type}`, { key });
  };
  switch (type) {
    case GgufValueType.UINT8:
      h.u8(v as number);
      return;
    case GgufValueType.INT8:
      h.i8(v as number);
      return;
    case GgufValueType.UINT16:
      h.u16(v as number);
      return;
    case GgufValueType.INT16:
      h.i16(v as number);
      return;
    case GgufValueType.UINT32:
      h.u32(v as number);
      return;
    case GgufValueType.INT32:
      h.i32(v as number);
      return;
    case GgufValueType.FLOAT32:
      h.f32(v as number);
      return;
    case GgufValueType.FLOAT64:
      h.f64(v as number);
      return;
    case GgufValueType.BOOL:
      h.u8(v ? 1 : 0);
      return;
    case GgufValueType.UINT64:
      h.u64(v as number | bigint);
      return;
    case GgufValueType.INT64:
      h.i64(v as number | bigint);
      return;
    case GgufValueType.STRING:
      if (typeof v !== "string") bad();
      h.str(v as string);
      return;
    case GgufValueType.ARRAY: {
      if (!Array.isArray(v) || arrayType === undefined) bad();
      const arr = v as GgufValue[];
      h.u32(arrayType!);
      h.u64(arr.length);
      for (const x of arr) writeValue(h, arrayType!, x, undefined, key);
      return;
    }
    default:
      bad();
  }
}

/** Writes one GGUF file into a positional sink. */
export class GgufWriter {
  /** Total file size. */
  readonly fileSize: number;
  private readonly header: Uint8Array;
  private readonly offsets: number[];
  private readonly sizes: number[];
  private next = 0;
  private written = 0; // values of tensor `next` written so far
  private headerDone = false;

  constructor(
    private readonly sink: FlmSink,
    metadata: readonly GgufKv[],
    private readonly tensors: readonly GgufTensorDecl[],
    readonly alignment = GGUF_DEFAULT_ALIGNMENT,
    /** Write PowerInfer's magic "PWRI" instead of "GGUF" (tests of PowerInfer files). */
    powerinfer = false,
  ) {
    const h = new HeaderBytes();
    h.u32(powerinfer ? POWERINFER_MAGIC : GGUF_MAGIC);
    h.u32(3);
    h.u64(tensors.length);
    const meta = [...metadata];
    if (alignment !== GGUF_DEFAULT_ALIGNMENT && !meta.some((m) => m.key === "general.alignment")) meta.push(kv.u32("general.alignment", alignment));
    h.u64(meta.length);
    for (const m of meta) {
      h.str(m.key);
      h.u32(m.type);
      writeValue(h, m.type, m.value, m.arrayType, m.key);
    }
    this.offsets = [];
    this.sizes = [];
    let rel = 0;
    for (const t of tensors) {
      if (!GGML_TYPES[t.type]) throw new FlashError("BAD_ARGUMENT", `GGUF writer: tensor "${t.name}" has unknown type ${t.type}`);
      const elements = t.dims.reduce((a, b) => a * b, 1);
      const size = typeBytes(t.type, elements);
      h.str(t.name);
      h.u32(t.dims.length);
      for (const d of t.dims) h.u64(d);
      h.u32(t.type);
      h.u64(rel);
      this.offsets.push(rel);
      this.sizes.push(size);
      rel = Math.ceil((rel + size) / alignment) * alignment;
    }
    const dataStart = Math.ceil(h.length / alignment) * alignment;
    const head = new Uint8Array(dataStart);
    head.set(h.bytes());
    this.header = head;
    for (let i = 0; i < this.offsets.length; i++) this.offsets[i] += dataStart;
    const last = tensors.length - 1;
    this.fileSize = last < 0 ? dataStart : this.offsets[last] + this.sizes[last];
  }

  /**
   * Appends values to the next tensor in declared order: f32 values (encoded as the tensor's type;
   * whole blocks per call) or bytes already in the tensor's type. A tensor may take several calls.
   */
  async write(name: string, data: Float32Array | Uint8Array): Promise<void> {
    if (!this.headerDone) {
      await this.sink.write(0, this.header);
      this.headerDone = true;
    }
    const t = this.tensors[this.next];
    if (!t) throw new FlashError("BAD_ARGUMENT", `GGUF writer: every declared tensor is written; got "${name}"`);
    if (t.name !== name) throw new FlashError("BAD_ARGUMENT", `GGUF writer: expected tensor "${t.name}" next, got "${name}"`);
    const elements = t.dims.reduce((a, b) => a * b, 1);
    const info = GGML_TYPES[t.type];
    const bytes = data instanceof Float32Array ? quantize(t.type, data) : data;
    const values = data instanceof Float32Array ? data.length : (data.byteLength / info.typeSize) * info.blockSize;
    if (!Number.isInteger(values) || this.written + values > elements) {
      throw new FlashError("BAD_ARGUMENT", `GGUF writer: tensor "${name}" (${ggmlTypeName(t.type)}) holds ${elements} values; ${this.written} written, ${values} more given`);
    }
    const at = this.offsets[this.next] + typeBytes(t.type, this.written);
    await this.sink.write(at, bytes);
    this.written += values;
    if (this.written === elements) {
      const end = this.offsets[this.next] + this.sizes[this.next];
      const nextStart = this.next + 1 < this.tensors.length ? this.offsets[this.next + 1] : end;
      if (nextStart > end) await this.sink.write(end, new Uint8Array(nextStart - end));
      this.next++;
      this.written = 0;
    }
  }

  /** Checks every tensor is written (an empty file writes its header here). */
  async finish(): Promise<void> {
    if (!this.headerDone) {
      await this.sink.write(0, this.header);
      this.headerDone = true;
    }
    if (this.next < this.tensors.length) throw new FlashError("BAD_ARGUMENT", `GGUF writer: tensor "${this.tensors[this.next].name}" and later ones are not written`);
  }
}

export { GgmlType };
