import { FormatError } from "../errors.js";
import { DTYPE_BYTES, isSupportedDtype } from "./dtype.js";
import type { SafetensorsDtype } from "./dtype.js";

/**
 * Validation of a safetensors JSON header (https://github.com/huggingface/safetensors): an object
 * mapping tensor names to `{dtype, shape, data_offsets: [begin, end]}`, offsets relative to the data
 * region that starts right after the header, plus an optional `__metadata__` string map (ignored).
 * Everything is checked before any tensor is read, so a later read cannot land outside its tensor.
 */

/** One tensor of a safetensors file. */
export interface TensorInfo {
  /** Name as stored in the file. */
  name: string;
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first (row-major). `[]` is a scalar. */
  shape: number[];
  /** Absolute byte offset of the data in its file. */
  offset: number;
  /** Byte length of the data (elements × dtype size). */
  byteLength: number;
  /** File the tensor lives in (the shard name for sharded checkpoints). */
  file: string;
}

/** Largest accepted header; the reference implementation caps it near 100 MB too. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const MAX_RANK = 8;

/**
 * Parses and validates `text`, the header of `file` whose data region starts at byte `dataStart` and
 * holds `dataLength` bytes. Returns the tensors in file order. Throws FormatError: BAD_HEADER
 * (not JSON, wrong field types, begin > end, overlapping tensors), UNSUPPORTED (dtype other than
 * F32/F16/BF16), SIZE_MISMATCH (shape × dtype size ≠ offset span), OUT_OF_BOUNDS (data past the end).
 */
export function parseSafetensorsHeader(text: string, file: string, dataStart: number, dataLength: number): TensorInfo[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError("BAD_HEADER", `${file}: the safetensors header is not valid JSON (${(e as Error).message})`, { file });
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new FormatError("BAD_HEADER", `${file}: the safetensors header must be a JSON object, got ${Array.isArray(json) ? "an array" : String(json)}`, { file });
  }
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") continue; // free-form strings; nothing the reader needs
    tensors.push(parseEntry(name, entry, file, dataStart, dataLength));
  }
  checkNoOverlap(tensors, file, dataStart);
  return tensors;
}

function parseEntry(name: string, entry: unknown, file: string, dataStart: number, dataLength: number): TensorInfo {
  const bad = (what: string): never => {
    throw new FormatError("BAD_HEADER", `${file}: tensor "${name}": ${what}`, { file, tensor: name });
  };
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) bad("entry is not an object");
  const e = entry as Record<string, unknown>;
  if (typeof e.dtype !== "string") bad("dtype is missing or not a string");
  if (!isSupportedDtype(e.dtype)) {
    throw new FormatError("UNSUPPORTED", `${file}: tensor "${name}" has dtype ${String(e.dtype)}; only F32, F16 and BF16 are supported`, {
      file,
      tensor: name,
      dtype: e.dtype,
    });
  }
  const dtype = e.dtype;
  if (!Array.isArray(e.shape) || e.shape.length > MAX_RANK) bad(`shape must be an array of at most ${MAX_RANK} dimensions`);
  const shape = e.shape as unknown[];
  let elements = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) bad(`shape ${show(shape)} has a dimension that is not a non-negative integer`);
    elements *= d as number;
  }
  const expected = elements * DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(expected)) bad(`shape ${show(shape)} is too large`);
  const off = e.data_offsets;
  if (!Array.isArray(off) || off.length !== 2 || !off.every((v) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0)) {
    bad(`data_offsets must be [begin, end] with non-negative integers, got ${show(off)}`);
  }
  const [begin, end] = off as [number, number];
  if (begin > end) bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end - begin !== expected) {
    throw new FormatError(
      "SIZE_MISMATCH",
      `${file}: tensor "${name}" (${dtype} ${show(shape)}) needs ${expected} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      { file, tensor: name, expected, actual: end - begin },
    );
  }
  if (end > dataLength) {
    throw new FormatError(
      "OUT_OF_BOUNDS",
      `${file}: tensor "${name}" data_offsets [${begin}, ${end}] run past the data region (${dataLength} bytes)`,
      { file, tensor: name, expected: dataLength, actual: end },
    );
  }
  return { name, dtype, shape: shape as number[], offset: dataStart + begin, byteLength: end - begin, file };
}

/** Two tensors sharing bytes would let a write to one corrupt the other; reject as the reference reader does. */
function checkNoOverlap(tensors: TensorInfo[], file: string, dataStart: number): void {
  const sorted = tensors.filter((t) => t.byteLength > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (cur.offset < prev.offset + prev.byteLength) {
      const span = (t: TensorInfo) => `[${t.offset - dataStart}, ${t.offset - dataStart + t.byteLength}]`;
      throw new FormatError("BAD_HEADER", `${file}: tensors "${prev.name}" ${span(prev)} and "${cur.name}" ${span(cur)} overlap`, {
        file,
        tensors: [prev.name, cur.name],
      });
    }
  }
}

/** A header value for an error message: arrays of numbers as written, anything else by kind only (a
 * hostile header can nest arrays deeply enough to overflow JSON.stringify's stack). */
function show(v: unknown): string {
  if (Array.isArray(v) && v.length <= 16 && v.every((x) => typeof x === "number")) return `[${v.join(", ")}]`;
  return Array.isArray(v) ? `an array of ${v.length} items that are not all numbers` : typeof v;
}
