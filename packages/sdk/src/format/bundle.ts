import { FlashError } from "../errors.js";
import { alignUp, bytesToF32, int8View, isPowerOfTwo, writeF32 } from "./bytes.js";
import { BUNDLE_HEADER_BYTES, DEFAULT_BUNDLE_ALIGNMENT, MAX_BUNDLE_ALIGNMENT, MIN_BUNDLE_ALIGNMENT } from "./constants.js";
import { quantizeVector } from "./quant.js";
import { checkRowLength, decodeRows, encodeRows, isRowDtype, rowBytes } from "./rows.js";
import type { Dtype } from "./types.js";

/**
 * One FFN neuron's bundle, byte-identical to what `ffn_bundled` reads from a cache slot
 * (crates/kernels/ABI.md): `[scale_gate f32][scale_up f32][scale_down f32][bias_up f32]`, then the
 * gate row if gated, the up row, the down column; `dim` values each, f32, int8 (value = scale·q),
 * f16, or ggml Q8_0/Q4_0 blocks. Only q8 bundles use the three scale fields; the others store 0.
 */

/** Byte offsets of the header fields within a bundle. */
export const BUNDLE_FIELDS = { scaleGate: 0, scaleUp: 4, scaleDown: 8, biasUp: 12 } as const;

/** Where everything is inside a bundle for a given dim, dtype and gating. */
export interface BundleLayout {
  /** Values per row/column. */
  readonly dim: number;
  /** Value type. */
  readonly dtype: Dtype;
  /** Whether a gate row is present. */
  readonly gated: boolean;
  /** Bytes of one row (gate, up or down): `dim` values in the dtype's layout (format/rows.ts). */
  readonly rowBytes: number;
  /** Byte offset of the gate row, or null when not gated. */
  readonly gateOffset: number | null;
  /** Byte offset of the up row. */
  readonly upOffset: number;
  /** Byte offset of the down column. */
  readonly downOffset: number;
  /** Bytes of the bundle itself (header + rows). */
  readonly bundleBytes: number;
  /** The stride alignment (power of two ≥ 16). */
  readonly alignment: number;
  /** `bundleBytes` rounded up to `alignment`: distance between bundles in the file and between cache slots. */
  readonly bundleStride: number;
}

/** The layout of bundles for `dim` values per row. `alignment` is a power of two in [16, 2^30]. */
export function bundleLayout(dim: number, dtype: Dtype, gated: boolean, alignment = DEFAULT_BUNDLE_ALIGNMENT): BundleLayout {
  if (!Number.isSafeInteger(dim) || dim < 1) throw new FlashError("BAD_ARGUMENT", `bundle dim must be a positive integer, got ${dim}`);
  if (!isPowerOfTwo(alignment) || alignment < MIN_BUNDLE_ALIGNMENT || alignment > MAX_BUNDLE_ALIGNMENT) {
    throw new FlashError("BAD_ARGUMENT", `bundle alignment must be a power of two in [${MIN_BUNDLE_ALIGNMENT}, 2^30], got ${alignment}`);
  }
  checkRowLength(dtype, dim, "bundle");
  const row = rowBytes(dtype, dim);
  const gateOffset = gated ? BUNDLE_HEADER_BYTES : null;
  const upOffset = BUNDLE_HEADER_BYTES + (gated ? row : 0);
  const downOffset = upOffset + row;
  const bundleBytes = downOffset + row;
  return { dim, dtype, gated, rowBytes: row, gateOffset, upOffset, downOffset, bundleBytes, alignment, bundleStride: alignUp(bundleBytes, alignment) };
}

/** One neuron's weights in f32, as a converter has them. */
export interface NeuronWeights {
  /** Row of the gate projection (dim values); required iff the layout is gated. */
  gate?: Float32Array;
  /** Row of the up projection (dim values). */
  up: Float32Array;
  /** Column of the down projection (dim values): the neuron's contribution direction. */
  down: Float32Array;
  /** Bias of the up projection for this neuron (OPT's fc1 bias); 0 when absent. */
  biasUp?: number;
}

/** Decoded bundle: f32 values (dequantized for q8) and the header fields. */
export interface UnpackedBundle {
  gate: Float32Array | null;
  up: Float32Array;
  down: Float32Array;
  biasUp: number;
  /** Scales as stored (0 for f32 bundles). */
  scaleGate: number;
  scaleUp: number;
  scaleDown: number;
}

/**
 * Writes one neuron's bundle (`layout.bundleBytes` bytes) into `target` at `offset`. q8 rows are
 * quantized with their own scale (max|v|/127). Stride padding is not touched: callers zero it once.
 */
export function packBundle(layout: BundleLayout, neuron: NeuronWeights, target: Uint8Array, offset = 0): void {
  const { dim } = layout;
  if (layout.gated !== (neuron.gate !== undefined)) {
    throw new FlashError("BAD_ARGUMENT", layout.gated ? "gated bundle needs a gate row" : "bundle is not gated but a gate row was given");
  }
  for (const [name, v] of [["gate", neuron.gate], ["up", neuron.up], ["down", neuron.down]] as const) {
    if (v !== undefined && v.length !== dim) throw new FlashError("BAD_ARGUMENT", `bundle ${name} row has ${v.length} values, expected ${dim}`);
  }
  if (offset < 0 || offset + layout.bundleBytes > target.byteLength) {
    throw new FlashError("BAD_ARGUMENT", `bundle of ${layout.bundleBytes} bytes at ${offset} does not fit a ${target.byteLength}-byte target`);
  }
  const header = new DataView(target.buffer, target.byteOffset + offset, BUNDLE_HEADER_BYTES);
  let scaleGate = 0;
  let scaleUp = 0;
  let scaleDown = 0;
  if (layout.dtype === "f32") {
    if (neuron.gate) writeF32(target, offset + layout.gateOffset!, neuron.gate);
    writeF32(target, offset + layout.upOffset, neuron.up);
    writeF32(target, offset + layout.downOffset, neuron.down);
  } else if (isRowDtype(layout.dtype)) {
    // f16 / q8_0 / q4_0: each row in its own encoding; the scale fields stay 0.
    if (neuron.gate) target.set(encodeRows(layout.dtype, neuron.gate), offset + layout.gateOffset!);
    target.set(encodeRows(layout.dtype, neuron.up), offset + layout.upOffset);
    target.set(encodeRows(layout.dtype, neuron.down), offset + layout.downOffset);
  } else {
    if (neuron.gate) scaleGate = quantizeVector(neuron.gate, int8View(target, offset + layout.gateOffset!, dim));
    scaleUp = quantizeVector(neuron.up, int8View(target, offset + layout.upOffset, dim));
    scaleDown = quantizeVector(neuron.down, int8View(target, offset + layout.downOffset, dim));
  }
  header.setFloat32(BUNDLE_FIELDS.scaleGate, scaleGate, true);
  header.setFloat32(BUNDLE_FIELDS.scaleUp, scaleUp, true);
  header.setFloat32(BUNDLE_FIELDS.scaleDown, scaleDown, true);
  header.setFloat32(BUNDLE_FIELDS.biasUp, neuron.biasUp ?? 0, true);
}

/** Decodes the bundle at `bytes[offset..]` into f32 rows (dequantizing q8: value = scale·q). */
export function unpackBundle(layout: BundleLayout, bytes: Uint8Array, offset = 0): UnpackedBundle {
  if (offset < 0 || offset + layout.bundleBytes > bytes.byteLength) {
    throw new FlashError("BAD_ARGUMENT", `bundle of ${layout.bundleBytes} bytes at ${offset} is outside a ${bytes.byteLength}-byte buffer`);
  }
  const header = new DataView(bytes.buffer, bytes.byteOffset + offset, BUNDLE_HEADER_BYTES);
  const scaleGate = header.getFloat32(BUNDLE_FIELDS.scaleGate, true);
  const scaleUp = header.getFloat32(BUNDLE_FIELDS.scaleUp, true);
  const scaleDown = header.getFloat32(BUNDLE_FIELDS.scaleDown, true);
  const biasUp = header.getFloat32(BUNDLE_FIELDS.biasUp, true);
  const row = (at: number, scale: number): Float32Array => {
    if (layout.dtype === "f32") return bytesToF32(bytes, offset + at, layout.dim).slice();
    if (isRowDtype(layout.dtype)) {
      const out = new Float32Array(layout.dim);
      decodeRows(layout.dtype, bytes.subarray(offset + at, offset + at + layout.rowBytes), layout.dim, out);
      return out;
    }
    const q = int8View(bytes, offset + at, layout.dim);
    const out = new Float32Array(layout.dim);
    for (let i = 0; i < out.length; i++) out[i] = scale * q[i];
    return out;
  };
  return {
    gate: layout.gateOffset === null ? null : row(layout.gateOffset, scaleGate),
    up: row(layout.upOffset, scaleUp),
    down: row(layout.downOffset, scaleDown),
    biasUp,
    scaleGate,
    scaleUp,
    scaleDown,
  };
}
