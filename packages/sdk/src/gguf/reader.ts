import { FlashError, FormatError } from "../errors.js";
import type { FlashSource } from "../source.js";
import { GGML_TYPES, GGUF_DEFAULT_ALIGNMENT, GGUF_LIMITS, GGUF_MAGIC, POWERINFER_MAGIC, GgufValueType, VALUE_BYTES, ggmlTypeName } from "./constants.js";
import { ByteCursor } from "./cursor.js";
import { dequantize } from "./dequant.js";

/**
 * GGUF reader (ggml-org/ggml docs/gguf.md), streamed over any {@link FlashSource}: the header
 * (metadata and tensor infos) is parsed in chunks, tensors are read one at a time on demand. Every
 * count, length, dimension and offset is checked against the file and {@link GGUF_LIMITS} before it
 * is used: a hostile file gets a FormatError naming the field, never a huge allocation.
 */

/** A metadata value: integers as numbers (bigint past 2^53), arrays as JS arrays. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** One metadata entry with its stored type (and element type for arrays), so a writer can copy it. */
export interface GgufKv {
  key: string;
  type: GgufValueType;
  /** Element type when `type` is ARRAY. */
  arrayType?: GgufValueType;
  value: GgufValue;
}

/** One tensor as the header describes it. */
export interface GgufTensorInfo {
  name: string;
  /** Dimensions as GGUF stores them: fastest-varying first (a PyTorch `[out][in]` weight is `[in, out]`). */
  dims: number[];
  /** ggml type id and its name. */
  type: number;
  typeName: string;
  /** Number of values. */
  elements: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  /** Bytes of data. */
  byteLength: number;
}

/** Options of {@link openGguf}. */
export interface OpenGgufOptions {
  signal?: AbortSignal;
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/** An opened GGUF file: its metadata and tensor table, and reads of single tensors. */
export class GgufFile {
  private readonly byName: Map<string, GgufTensorInfo>;
  constructor(
    readonly source: FlashSource,
    readonly version: number,
    readonly metadata: ReadonlyMap<string, GgufKv>,
    readonly tensors: readonly GgufTensorInfo[],
    readonly alignment: number,
    /** Absolute offset of the tensor data section. */
    readonly dataOffset: number,
    /** True for PowerInfer's files (magic "PWRI"): predictors and `ffn_down_t` may be present. */
    readonly powerinfer = false,
  ) {
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  /** The value of metadata `key`, or undefined. */
  get(key: string): GgufValue | undefined {
    return this.metadata.get(key)?.value;
  }

  /** The tensor named `name`, or undefined. */
  tensor(name: string): GgufTensorInfo | undefined {
    return this.byName.get(name);
  }

  /** The raw bytes of a tensor as stored. */
  async readRaw(name: string | GgufTensorInfo, signal?: AbortSignal): Promise<Uint8Array> {
    const t = typeof name === "string" ? this.expectTensor(name) : name;
    const out = new Uint8Array(t.byteLength);
    if (t.byteLength > 0) await this.source.read([{ offset: t.offset, length: t.byteLength, target: out }], signal);
    return out;
  }

  /** A tensor dequantized to f32, in stored order (row-major with the fastest dimension last). */
  async readF32(name: string | GgufTensorInfo, signal?: AbortSignal): Promise<Float32Array> {
    const t = typeof name === "string" ? this.expectTensor(name) : name;
    const raw = await this.readRaw(t, signal);
    const out = new Float32Array(t.elements);
    dequantize(t.type, raw, t.elements, out, 0);
    return out;
  }

  /** The tensor named `name`, or a FormatError naming it. */
  expectTensor(name: string): GgufTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new FormatError("BAD_HEADER", `GGUF: no tensor "${name}" (the file has ${this.tensors.length} tensors)`, { tensor: name });
    return t;
  }
}

/** Parses a GGUF header from `source`. */
export async function openGguf(source: FlashSource, opts: OpenGgufOptions = {}): Promise<GgufFile> {
  const limit = Math.min(source.byteLength, GGUF_LIMITS.headerBytes);
  const cur = new ByteCursor(source, limit, "GGUF header", opts.signal);
  const bad = (message: string, details: Record<string, unknown> = {}): never => {
    throw new FormatError("BAD_HEADER", `GGUF: ${message}`, { offset: cur.pos, ...details });
  };
  if (source.byteLength < 24) throw new FormatError("TRUNCATED", `GGUF: the file has ${source.byteLength} bytes, fewer than the 24-byte header`, { fileBytes: source.byteLength });
  await cur.need(24);
  const magic = cur.u32();
  if (magic !== GGUF_MAGIC && magic !== POWERINFER_MAGIC) throw new FormatError("BAD_MAGIC", `GGUF: magic 0x${magic.toString(16).padStart(8, "0")} is not "GGUF" (or PowerInfer's "PWRI")`, { magic });
  const version = cur.u32();
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24) | ((version >> 8) & 0xff) << 16 | ((version >> 16) & 0xff) << 8 | (version >>> 24);
    const hint = swapped === 2 || swapped === 3 ? " (a big-endian GGUF file; only little-endian files are read)" : version === 1 ? " (GGUF v1 is obsolete)" : "";
    throw new FormatError("BAD_VERSION", `GGUF: version ${version} is not supported (2 and 3 are)${hint}`, { version });
  }
  const count = (what: string, max: number): number => {
    const v = cur.u64();
    if (v > BigInt(max)) bad(`${what} is ${v}, more than the limit ${max}`, { field: what, actual: String(v), max });
    return Number(v);
  };
  const tensorCount = count("tensor_count", GGUF_LIMITS.tensors);
  const kvCount = count("metadata_kv_count", GGUF_LIMITS.metadata);

  const readString = async (what: string): Promise<string> => {
    await cur.need(8);
    const len = cur.u64();
    if (len > BigInt(GGUF_LIMITS.stringBytes)) bad(`${what}: string length ${len} exceeds ${GGUF_LIMITS.stringBytes}`);
    const n = Number(len);
    await cur.need(n);
    return decoder.decode(cur.bytes(n));
  };

  const readScalar = (type: number): GgufValue => {
    switch (type) {
      case GgufValueType.UINT8: return cur.u8();
      case GgufValueType.INT8: return cur.i8();
      case GgufValueType.UINT16: return cur.u16();
      case GgufValueType.INT16: return cur.i16();
      case GgufValueType.UINT32: return cur.u32();
      case GgufValueType.INT32: return cur.i32();
      case GgufValueType.FLOAT32: return cur.f32();
      case GgufValueType.FLOAT64: return cur.f64();
      case GgufValueType.BOOL: {
        const b = cur.u8();
        if (b > 1) bad(`bool value ${b} is neither 0 nor 1`);
        return b === 1;
      }
      case GgufValueType.UINT64: return safe(cur.u64());
      case GgufValueType.INT64: return safe(cur.i64());
      default: return bad(`metadata value type ${type} is unknown`, { valueType: type });
    }
  };

  const readValue = async (type: number, key: string, depth: number): Promise<{ value: GgufValue; arrayType?: GgufValueType }> => {
    if (type === GgufValueType.STRING) return { value: await readString(key) };
    if (type === GgufValueType.ARRAY) {
      if (depth >= GGUF_LIMITS.arrayDepth) bad(`${key}: arrays nested deeper than ${GGUF_LIMITS.arrayDepth}`);
      await cur.need(12);
      const elemType = cur.u32();
      const n = cur.u64();
      if (n > BigInt(GGUF_LIMITS.arrayLength)) bad(`${key}: array of ${n} elements exceeds ${GGUF_LIMITS.arrayLength}`, { key });
      const len = Number(n);
      // Each element takes at least this many bytes: a length the file cannot hold is refused before allocating.
      const minBytes = elemType === GgufValueType.STRING ? 8 : elemType === GgufValueType.ARRAY ? 12 : VALUE_BYTES[elemType];
      if (minBytes === undefined) bad(`${key}: array element type ${elemType} is unknown`, { key, valueType: elemType });
      if (len * minBytes > cur.remaining) {
        throw new FormatError("TRUNCATED", `GGUF: ${key}: an array of ${len} elements needs at least ${len * minBytes} bytes at offset ${cur.pos}, the file has ${cur.remaining} left`, { key, offset: cur.pos });
      }
      const values: GgufValue[] = new Array(len);
      if (elemType === GgufValueType.STRING || elemType === GgufValueType.ARRAY) {
        for (let i = 0; i < len; i++) values[i] = (await readValue(elemType, key, depth + 1)).value;
      } else {
        const size = minBytes;
        // Read fixed-size elements in runs that fit the cursor's refills.
        const perRun = Math.max(1, Math.floor((1 << 20) / size));
        for (let i = 0; i < len; i += perRun) {
          const k = Math.min(perRun, len - i);
          await cur.need(k * size);
          for (let j = 0; j < k; j++) values[i + j] = readScalar(elemType);
        }
      }
      return { value: values, arrayType: elemType as GgufValueType };
    }
    const size = VALUE_BYTES[type];
    if (size === undefined) bad(`${key}: metadata value type ${type} is unknown`, { key, valueType: type });
    await cur.need(size);
    return { value: readScalar(type) };
  };

  const metadata = new Map<string, GgufKv>();
  for (let i = 0; i < kvCount; i++) {
    const key = await readString(`metadata key ${i}`);
    if (metadata.has(key)) bad(`metadata key "${key}" appears twice`, { key });
    await cur.need(4);
    const type = cur.u32();
    const { value, arrayType } = await readValue(type, key, 0);
    const kv: GgufKv = { key, type: type as GgufValueType, value };
    if (arrayType !== undefined) kv.arrayType = arrayType;
    metadata.set(key, kv);
  }

  let alignment = GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.get("general.alignment");
  if (al !== undefined) {
    const a = al.value;
    if (typeof a !== "number" || !Number.isInteger(a) || a < 1 || a > 1 << 20 || (a & (a - 1)) !== 0) {
      bad(`general.alignment ${String(a)} is not a power of two in 1 … 2^20`, { key: "general.alignment" });
    }
    alignment = a as number;
  }

  const infos: { name: string; dims: number[]; type: number; rel: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const name = await readString(`tensor ${i} name`);
    if (names.has(name)) bad(`tensor "${name}" appears twice`, { tensor: name });
    names.add(name);
    await cur.need(4);
    const nDims = cur.u32();
    if (nDims < 1 || nDims > GGUF_LIMITS.dims) bad(`tensor "${name}" has ${nDims} dimensions (1 … ${GGUF_LIMITS.dims})`, { tensor: name });
    await cur.need(8 * nDims + 12);
    const dims: number[] = [];
    let elements = 1;
    for (let d = 0; d < nDims; d++) {
      const v = cur.u64();
      if (v < 1n || v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`tensor "${name}" dimension ${d} is ${v}`, { tensor: name });
      dims.push(Number(v));
      elements *= Number(v);
      if (!Number.isSafeInteger(elements)) bad(`tensor "${name}" has too many elements (${dims.join("×")}…)`, { tensor: name });
    }
    const type = cur.u32();
    const rel = cur.u64();
    if (rel > BigInt(Number.MAX_SAFE_INTEGER)) bad(`tensor "${name}" offset ${rel} is too large`, { tensor: name });
    infos.push({ name, dims, type, rel: Number(rel) });
  }
  const dataOffset = Math.ceil(cur.pos / alignment) * alignment;

  const tensors: GgufTensorInfo[] = [];
  for (const t of infos) {
    const info = GGML_TYPES[t.type];
    const elements = t.dims.reduce((a, b) => a * b, 1);
    if (!info) throw new FormatError("UNSUPPORTED", `GGUF: tensor "${t.name}" has ggml type ${t.type}, which this reader does not know`, { tensor: t.name, type: t.type });
    if (t.dims[0] % info.blockSize !== 0) bad(`tensor "${t.name}" rows of ${t.dims[0]} are not whole ${info.name} blocks of ${info.blockSize}`, { tensor: t.name });
    const byteLength = (elements / info.blockSize) * info.typeSize;
    if (t.rel % alignment !== 0) bad(`tensor "${t.name}" offset ${t.rel} is not a multiple of the alignment ${alignment}`, { tensor: t.name });
    const offset = dataOffset + t.rel;
    if (offset + byteLength > source.byteLength) {
      throw new FormatError("TRUNCATED", `GGUF: tensor "${t.name}" (${ggmlTypeName(t.type)} ${t.dims.join("×")}) spans [${offset}, ${offset + byteLength}) but the file has ${source.byteLength} bytes`, { tensor: t.name, offset, byteLength, fileBytes: source.byteLength });
    }
    tensors.push({ name: t.name, dims: t.dims, type: t.type, typeName: info.name, elements, offset, byteLength });
  }
  // Tensor data must not overlap (a crafted file could alias one tensor's bytes as another's).
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1];
    const b = sorted[i];
    if (a.offset + a.byteLength > b.offset) bad(`tensors "${a.name}" and "${b.name}" overlap`, { tensors: [a.name, b.name] });
  }
  return new GgufFile(source, version, metadata, tensors, alignment, dataOffset, magic === POWERINFER_MAGIC);
}

function safe(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

/** True when `source` starts with the GGUF magic (or PowerInfer's "PWRI"). Reads 4 bytes. */
export async function isGguf(source: FlashSource, signal?: AbortSignal): Promise<boolean> {
  if (source.byteLength < 4) return false;
  const b = new Uint8Array(4);
  await source.read([{ offset: 0, length: 4, target: b }], signal);
  const magic = new DataView(b.buffer).getUint32(0, true);
  return magic === GGUF_MAGIC || magic === POWERINFER_MAGIC;
}

/** Typed access to metadata with checks: `meta(file).int("llama.block_count")`. */
export function metaReader(file: GgufFile) {
  const get = (key: string) => file.get(key);
  const wrong = (key: string, expected: string, v: unknown): never => {
    throw new FormatError(v === undefined ? "BAD_HEADER" : "BAD_HEADER", `GGUF metadata ${key}: expected ${expected}, got ${v === undefined ? "nothing (missing)" : typeof v === "string" ? JSON.stringify(v.slice(0, 60)) : Array.isArray(v) ? `an array of ${v.length}` : String(v)}`, { key });
  };
  return {
    has: (key: string) => get(key) !== undefined,
    int(key: string, def?: number): number {
      const v = get(key) ?? def;
      if (typeof v !== "number" || !Number.isSafeInteger(v)) return wrong(key, "an integer", v);
      return v;
    },
    num(key: string, def?: number): number {
      const v = get(key) ?? def;
      if (typeof v !== "number" || !Number.isFinite(v)) return wrong(key, "a number", v);
      return v;
    },
    str(key: string, def?: string): string {
      const v = get(key) ?? def;
      if (typeof v !== "string") return wrong(key, "a string", v);
      return v;
    },
    optStr(key: string): string | undefined {
      const v = get(key);
      if (v === undefined) return undefined;
      if (typeof v !== "string") return wrong(key, "a string", v);
      return v;
    },
    strings(key: string): string[] {
      const v = get(key);
      if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) return wrong(key, "an array of strings", v);
      return v as string[];
    },
    numbers(key: string): number[] {
      const v = get(key);
      if (!Array.isArray(v) || v.some((x) => typeof x !== "number")) return wrong(key, "an array of numbers", v);
      return v as number[];
    },
  };
}

/** Thrown for a GGUF that is well formed but holds something flashllm cannot run. */
export function unsupported(message: string, details: Record<string, unknown> = {}): never {
  throw new FlashError("UNSUPPORTED", `GGUF: ${message}`, details);
}
