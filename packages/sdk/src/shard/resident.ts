import { FlashError, FormatError } from "../errors.js";
import type { FlmFile } from "../format/reader.js";
import { crc32, crcToHex, hexToCrc } from "../format/crc32.js";
import { isBlockDtype, rowBytes } from "../format/rows.js";
import { crc32Combine } from "../format/crc32-combine.js";
import { blocksToRows, columnBlockBytes, columnBlockSpan } from "../format/column-blocks.js";
import { RESIDENT_SECTION, TENSOR_ALIGNMENT } from "../format/constants.js";
import type { TensorEntry } from "../format/types.js";
import type { Kernels } from "../kernels/loader.js";
import type { Matrix, WeightStore } from "../model/weights.js";
import type { ReadRequest } from "../source.js";
import type { TensorPart } from "./parts.js";
import { matrixShape, partReadMode } from "./parts.js";

/**
 * Reads resident tensor parts straight into WASM memory (one read per row range, no whole-section
 * buffer, no copy), and checksums the bytes each part owns as they are: the pieces are combined into
 * the section's CRC by {@link verifyResident}.
 */

/**
 * CRC-32 of bytes just read: in the kernels (slicing-by-16, ~2x the JS loop) when they lie in the
 * kernels' memory, as every tensor loaded straight into WASM does; in JS for host arrays.
 */
function crcOf(k: Kernels, bytes: Uint8Array): number {
  if (bytes.buffer === k.k.memory.buffer) return k.k.crc32(bytes.byteOffset, bytes.byteLength, 0) >>> 0;
  return crc32(bytes);
}

/** The CRC-32 of `length` bytes at `offset` of the resident section. */
export interface CrcPiece {
  offset: number;
  length: number;
  crc: number;
}

/**
 * Bytes of `cols` values of a stored tensor's row: a whole row, or a slice of columns (the columns of
 * some attention heads). Block types (q8_0, q4_0) can only be cut at block boundaries (32 values).
 */
function colBytes(t: TensorEntry, first: number, cols: number): number {
  if (isBlockDtype(t.dtype) && (first % 32 !== 0 || cols % 32 !== 0)) {
    throw new FlashError("UNSUPPORTED", `tensor "${t.name}" (${t.dtype}) cannot be cut at column ${first} (+${cols}) for a shard: ${t.dtype} blocks hold 32 values; use fewer workers or a model whose heads span whole blocks`, { tensor: t.name, first, cols });
  }
  return rowBytes(t.dtype, cols);
}

/** The blocks `[first, first + count)` a part of a column-blocked tensor keeps; throws if its columns are not whole blocks of all rows. */
function blockRange(p: TensorPart, t: TensorEntry): { first: number; count: number } {
  const block = t.columnBlock!;
  const { rows, cols } = matrixShape(t);
  const c = p.cols ?? { first: 0, count: cols };
  if (c.first % block !== 0 || c.count % block !== 0 || p.rows.first !== 0 || p.rows.count !== rows) {
    throw new FlashError("BAD_ARGUMENT", `tensor "${t.name}" is stored in blocks of ${block} columns: a part must keep whole blocks of every row, not columns ${c.first} (+${c.count}) of rows ${p.rows.first} (+${p.rows.count})`, { tensor: t.name, block });
  }
  return { first: c.first / block, count: c.count / block };
}

/**
 * The bytes a `rows` or `blocks` part reads in place (offset relative to the resident section), and
 * how many column blocks they hold (1 for rows). For `gather` parts, the rows the columns come from.
 */
function inPlaceSpan(p: TensorPart, t: TensorEntry, mode: ReturnType<typeof partReadMode>): { offset: number; length: number; blocks: number } {
  if (mode === "blocks") {
    const b = blockRange(p, t);
    return { ...columnBlockSpan(t, b.first, b.count), blocks: b.count };
  }
  const rowLen = colBytes(t, 0, matrixShape(t).cols);
  return { offset: t.offset + p.rows.first * rowLen, length: p.rows.count * rowLen, blocks: 1 };
}

/**
 * Loads `parts` into `store` (WASM memory) and returns the CRC pieces of the bytes they own. Parts
 * named in `toHost` are read into host arrays instead (f32 only: predictor weights, which their
 * selector copies itself) and returned. Every block is allocated before the first read, so memory
 * cannot grow (and detach the read targets) while reads are in flight.
 */
export async function loadParts(
  file: FlmFile,
  k: Kernels,
  store: WeightStore,
  parts: readonly TensorPart[],
  opts: { signal?: AbortSignal; toHost?: (p: TensorPart) => boolean } = {},
): Promise<{ pieces: CrcPiece[]; host: Map<string, Float32Array> }> {
  const section = file.section(RESIDENT_SECTION);
  const byName = new Map(file.manifest.tensors.map((t) => [t.name, t]));
  const host = new Map<string, Float32Array>();
  const pieces: CrcPiece[] = [];
  const entries = parts.map((p) => {
    const t = byName.get(p.tensor);
    if (!t) throw new FormatError("BAD_MANIFEST", `tensor "${p.tensor}" is missing: the forward pass needs it`, { tensor: p.tensor });
    const mode = partReadMode(p, t);
    return { p, t, shape: matrixShape(t), mode, span: inPlaceSpan(p, t, mode) };
  });
  // 1. Allocate everything.
  const matrices = entries.map(({ p, t, shape, mode, span }) => {
    if (opts.toHost?.(p)) {
      if (t.dtype !== "f32" || mode !== "rows") throw new FlashError("UNSUPPORTED", `tensor "${t.name}" must be f32 and row-major`);
      host.set(p.as, new Float32Array(p.rows.count * shape.cols));
      return undefined;
    }
    // Bytes read in place are placed to agree with their file offset: they need no bounce buffer.
    const at = mode === "gather" ? undefined : section.offset + span.offset;
    return store.reserve(p.as, t.dtype, p.rows.count, p.cols?.count ?? shape.cols, at);
  });
  // 2. Row ranges and column-block spans: straight into their blocks (or host arrays), all reads at once.
  const requests: ReadRequest[] = [];
  const dataView = (i: number): Uint8Array => {
    const { p, span } = entries[i];
    const m = matrices[i];
    if (!m) return new Uint8Array(host.get(p.as)!.buffer);
    return k.u8(m.ptr, span.length);
  };
  const scalesView = (i: number, first: number, count: number) => k.u8(matrices[i]!.scalesPtr + (first - entries[i].p.rows.first) * 4, count * 4);
  for (let i = 0; i < entries.length; i++) {
    const { p, t, mode, span } = entries[i];
    if (mode === "gather") continue;
    const target = dataView(i);
    requests.push({ offset: section.offset + span.offset, length: target.byteLength, target });
    if (t.dtype === "q8") requests.push({ offset: section.offset + t.scaleOffset! + p.rows.first * 4, length: p.rows.count * 4, target: scalesView(i, p.rows.first, p.rows.count) });
  }
  await file.source.read(requests, opts.signal);
  let buffer = new Uint8Array(0);
  const scratch = (bytes: number) => {
    if (buffer.byteLength < bytes) buffer = new Uint8Array(bytes);
    return buffer.subarray(0, bytes);
  };
  for (let i = 0; i < entries.length; i++) {
    const { p, t, shape, mode, span } = entries[i];
    if (mode === "gather") continue;
    // The span of a column-blocked part is its own (parts keep disjoint blocks): checksummed whole by
    // any part that checksums at all; the per-row scales every part reads are split by crcRows.
    if (p.crcRows && mode === "blocks") pieces.push({ offset: span.offset, length: span.length, crc: crcOf(k, dataView(i)) });
    if (p.crcRows && p.crcRows.count > 0) {
      if (mode === "rows") {
        const rel = p.crcRows.first - p.rows.first;
        const rowLen = colBytes(t, 0, shape.cols);
        pieces.push({ offset: t.offset + p.crcRows.first * rowLen, length: p.crcRows.count * rowLen, crc: crcOf(k, dataView(i).subarray(rel * rowLen, (rel + p.crcRows.count) * rowLen)) });
      }
      if (t.dtype === "q8") pieces.push({ offset: t.scaleOffset! + p.crcRows.first * 4, length: p.crcRows.count * 4, crc: crcOf(k, scalesView(i, p.crcRows.first, p.crcRows.count)) });
    }
    if (mode === "blocks" && span.blocks > 1) {
      // Checksummed as stored; now the rows the matvec reads: one copy out, one strided copy back.
      const { rows, blockRowBytes } = columnBlockBytes(t);
      const data = dataView(i);
      const stored = scratch(data.byteLength);
      stored.set(data);
      blocksToRows(stored, data, rows, blockRowBytes, span.blocks);
    }
  }
  // 3. Columns of row-major tensors: whole rows through one host buffer (reused), the kept columns gathered into WASM.
  for (let i = 0; i < entries.length; i++) {
    const { p, t, shape, mode } = entries[i];
    if (mode !== "gather") continue;
    const cols = p.cols!;
    const m = matrices[i]!;
    const rowLen = colBytes(t, 0, shape.cols);
    const bytes = p.rows.count * rowLen;
    const whole = scratch(bytes);
    const reqs: ReadRequest[] = [{ offset: section.offset + t.offset + p.rows.first * rowLen, length: bytes, target: whole }];
    if (t.dtype === "q8") reqs.push({ offset: section.offset + t.scaleOffset! + p.rows.first * 4, length: p.rows.count * 4, target: k.u8(m.scalesPtr, p.rows.count * 4) });
    await file.source.read(reqs, opts.signal);
    gatherColumns(k, m, whole, rowLen, colBytes(t, 0, cols.first), colBytes(t, cols.first, cols.count));
    if (p.crcRows && p.crcRows.count > 0) {
      const rel = p.crcRows.first - p.rows.first;
      pieces.push({ offset: t.offset + p.crcRows.first * rowLen, length: p.crcRows.count * rowLen, crc: crc32(whole.subarray(rel * rowLen, (rel + p.crcRows.count) * rowLen)) });
      if (t.dtype === "q8") {
        const scales = k.u8(m.scalesPtr + rel * 4, p.crcRows.count * 4);
        pieces.push({ offset: t.scaleOffset! + p.crcRows.first * 4, length: scales.byteLength, crc: crcOf(k, scales) });
      }
    }
  }
  return { pieces, host };
}

// Copies bytes [from, from+width) of every row of `whole` into consecutive rows of `m`.
function gatherColumns(k: Kernels, m: Matrix, whole: Uint8Array, rowBytes: number, from: number, width: number): void {
  const dst = k.u8(m.ptr, m.rows * width);
  for (let r = 0; r < m.rows; r++) dst.set(whole.subarray(r * rowBytes + from, r * rowBytes + from + width), r * width);
}

/** Gaps below this between checksummed pieces are the writer's zero padding between tensors. */
const PADDING = TENSOR_ALIGNMENT;

/**
 * Checks the resident section against the manifest's CRC from the pieces every reader checksummed:
 * pieces are combined in file order; padding between tensors counts as the zeros the writer wrote;
 * larger stretches nobody loaded (predictors a run does not use) are read here, in chunks. Throws
 * CHECKSUM_MISMATCH naming the section, as a whole-section check does.
 */
export async function verifyResident(file: FlmFile, pieces: readonly CrcPiece[], signal?: AbortSignal): Promise<void> {
  const section = file.section(RESIDENT_SECTION);
  const sorted = [...pieces].sort((a, b) => a.offset - b.offset);
  let crc = 0;
  let at = 0;
  const fill = async (end: number) => {
    if (end - at < PADDING) {
      crc = crc32(new Uint8Array(end - at), crc);
      at = end;
      return;
    }
    const chunk = new Uint8Array(Math.min(end - at, 8 << 20));
    while (at < end) {
      const part = chunk.subarray(0, Math.min(chunk.byteLength, end - at));
      await file.source.read([{ offset: section.offset + at, length: part.byteLength, target: part }], signal);
      crc = crc32(part, crc);
      at += part.byteLength;
    }
  };
  for (const p of sorted) {
    if (p.offset < at) throw new FlashError("BAD_ARGUMENT", `resident checksum pieces overlap at offset ${p.offset} (covered up to ${at}): a bug in the shard plan`, { offset: p.offset, covered: at });
    if (p.offset > at) await fill(p.offset);
    crc = crc32Combine(crc, p.crc, p.length);
    at = p.offset + p.length;
  }
  if (section.length > at) await fill(section.length);
  if (at > section.length) throw new FlashError("BAD_ARGUMENT", `resident checksum pieces end at ${at}, past the section's ${section.length} bytes`);
  if (crc !== hexToCrc(section.crc32)) {
    throw new FormatError("CHECKSUM_MISMATCH", `checksum mismatch in section "${section.name}": manifest says crc32 ${section.crc32}, the ${section.length} bytes at offset ${section.offset} have ${crcToHex(crc)}`, {
      section: section.name,
      expected: section.crc32,
      actual: crcToHex(crc),
    });
  }
}
