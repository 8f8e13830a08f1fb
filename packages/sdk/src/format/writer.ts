import { FlashError } from "../errors.js";
import { f32ToBytes } from "./bytes.js";
import { packBundle } from "./bundle.js";
import type { BundleLayout, NeuronWeights } from "./bundle.js";
import { BUNDLE_CRC_BYTES, FFN_CRC_SECTION, HEADER_BYTES, RESIDENT_SECTION, ffnSectionName } from "./constants.js";
import { columnBlockBytes, rowsToBlocks } from "./column-blocks.js";
import { Crc32, crc32, crcToHex } from "./crc32.js";
import { encodeHeader } from "./header.js";
import { planFlm } from "./layout.js";
import type { FlmDeclaration, FlmPlan } from "./layout.js";
import { encodeManifest } from "./manifest.js";
import { quantizeVector } from "./quant.js";
import { encodeRows, isRowDtype, rowBytes } from "./rows.js";
import type { RowDtype } from "./rows.js";
import type { QuantizedRows } from "./quant.js";
import type { FlmSink } from "./sink.js";
import type { Manifest, SectionEntry, TensorEntry } from "./types.js";

/**
 * Streaming, positional `.flm` writer. Every offset is computed in the constructor (see
 * {@link planFlm}), so data can be supplied piece by piece and memory stays at one chunk of bundles
 * (default 4 MiB) plus the per-bundle CRC table (4 bytes per neuron). `finish()` writes the header and
 * manifest last: the manifest's space is known exactly up front because CRCs are stored as
 * fixed-width hex. Every byte of the file, padding included, is written exactly once, so a sink need
 * not pre-zero anything.
 *
 * Order: resident tensors in declared order (their section CRC is computed as they stream by),
 * the tokenizer and the FFN layers in any order, then `finish()`. Calls must not overlap (BUSY).
 */

/** One neuron's bundle for {@link FlmWriter.writeLayer}: f32 weights to pack, or an already packed bundle (≥ bundleBytes bytes). */
export type NeuronInput = NeuronWeights | Uint8Array;

/** Supplies neuron `index` of the layer being written. */
export type NeuronSource = (index: number) => NeuronInput | Promise<NeuronInput>;

/** Options of {@link FlmWriter.writeLayer}. */
export interface WriteLayerOptions {
  /** Bytes of bundles buffered per sink write (rounded down to whole bundles, at least one). Default 4 MiB. */
  chunkBytes?: number;
}

const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;

function argError(message: string, details: Record<string, unknown> = {}): FlashError {
  return new FlashError("BAD_ARGUMENT", message, details);
}

/** Writes one `.flm` file into a {@link FlmSink}. */
export class FlmWriter {
  /** The computed layout: manifest (CRCs pending), file size, bundle layout. */
  readonly plan: FlmPlan;
  private readonly sink: FlmSink;
  private readonly sections: Map<string, SectionEntry>;
  private readonly sectionCrcs = new Map<string, number>();
  /** CRC-32 of every bundle, layer-major: the content of the ffn.crc section. */
  private readonly bundleCrcs: Uint32Array;
  private readonly layersDone: boolean[];
  private nextTensor = 0;
  private residentCursor = 0;
  private readonly residentCrc = new Crc32();
  private busy = false;
  private failed: unknown = undefined;
  private finished = false;
  private readonly fingerprintPredictor: boolean;

  /** Lays out the file; throws BAD_ARGUMENT or a FormatError (e.g. WRONG_DIMS) for a bad declaration. Writes nothing yet. */
  constructor(sink: FlmSink, declaration: FlmDeclaration) {
    this.sink = sink;
    this.plan = planFlm(declaration);
    this.fingerprintPredictor = declaration.fingerprintPredictor === true;
    this.sections = new Map(this.plan.manifest.sections.map((s) => [s.name, s]));
    const { nLayers, hiddenDim } = this.plan.manifest.config;
    this.bundleCrcs = new Uint32Array(nLayers * hiddenDim);
    this.layersDone = new Array<boolean>(nLayers).fill(false);
  }

  /** Size of the finished file in bytes. */
  get fileSize(): number {
    return this.plan.fileSize;
  }

  /** Layout of the bundles the FFN sections hold. */
  get bundleLayout(): BundleLayout {
    return this.plan.bundle;
  }

  /**
   * Writes the next resident tensor (tensors go in declared order). `data` is the f32 tensor,
   * row-major; for a q8 tensor it is quantized here (per row), or may be given already quantized.
   */
  async writeTensor(name: string, data: Float32Array | QuantizedRows | { dtype: RowDtype; raw: Uint8Array }): Promise<void> {
    const t = this.plan.manifest.tensors[this.nextTensor];
    if (!t) throw argError(`all ${this.nextTensor} declared tensors are written; got another: "${name}"`);
    if (t.name !== name) throw argError(`tensors must be written in declared order: expected "${t.name}", got "${name}"`);
    const elements = t.shape.reduce((a, b) => a * b, 1);
    const cols = t.shape[t.shape.length - 1];
    if (data instanceof Float32Array) {
      if (data.length !== elements) throw argError(`tensor "${name}" needs ${elements} values, got ${data.length}`);
    } else if ("raw" in data) {
      // Rows already in the tensor's encoding (a GGUF tensor's own blocks): copied verbatim.
      if (data.dtype !== t.dtype || data.raw.byteLength !== t.length) throw argError(`tensor "${name}" (${t.dtype}) needs ${t.length} bytes of ${t.dtype} rows, got ${data.raw.byteLength} bytes of ${data.dtype}`);
    } else if (t.dtype !== "q8" || data.q.length !== elements || data.scales.length !== elements / cols) {
      throw argError(`tensor "${name}" (${t.dtype}) needs ${elements} int8 values and ${elements / cols} scales`);
    }
    await this.run(async () => {
      if (t.columnBlock !== undefined) await this.writeColumnBlocked(t, data, cols);
      else if (t.dtype === "f32") await this.residentPut(t.offset, f32ToBytes(data as Float32Array));
      else if (isRowDtype(t.dtype)) await this.writeRows(t, t.dtype, data as Float32Array | { raw: Uint8Array }, cols);
      else await this.writeQ8(t, data as Float32Array | QuantizedRows, cols);
      this.nextTensor++;
      if (this.nextTensor === this.plan.manifest.tensors.length) await this.closeResident();
    });
  }

  /** Writes the tokenizer file; its length must be the declared `tokenizer.byteLength`. */
  async writeTokenizer(bytes: Uint8Array): Promise<void> {
    const s = this.sections.get(this.plan.manifest.tokenizer.section)!;
    if (this.sectionCrcs.has(s.name)) throw argError("the tokenizer is already written");
    if (bytes.byteLength !== s.length) throw argError(`tokenizer has ${bytes.byteLength} bytes, declared ${s.length}`);
    await this.run(() => this.writeWhole(s, bytes));
  }

  /**
   * Writes layer `layer`'s bundles: `neuron(i)` for i = 0 … hiddenDim-1, in order. Packs and
   * checksums each bundle into a chunk buffer and writes the chunk, so memory stays O(chunkBytes).
   */
  async writeLayer(layer: number, neuron: NeuronSource, options: WriteLayerOptions = {}): Promise<void> {
    const { nLayers, hiddenDim } = this.plan.manifest.config;
    if (!Number.isInteger(layer) || layer < 0 || layer >= nLayers) throw argError(`layer ${layer} is not in [0, ${nLayers})`);
    if (this.layersDone[layer]) throw argError(`layer ${layer} is already written`);
    const { bundleBytes, bundleStride } = this.plan.bundle;
    const perChunk = Math.max(1, Math.min(hiddenDim, Math.floor((options.chunkBytes ?? DEFAULT_CHUNK_BYTES) / bundleStride)));
    const section = this.sections.get(ffnSectionName(layer))!;
    await this.run(async () => {
      // Zeroed once: bundles overwrite only their bundleBytes, so stride padding stays zero.
      const buf = new Uint8Array(perChunk * bundleStride);
      const crc = new Crc32();
      for (let start = 0; start < hiddenDim; start += perChunk) {
        const count = Math.min(perChunk, hiddenDim - start);
        for (let k = 0; k < count; k++) {
          const i = start + k;
          const at = k * bundleStride;
          const input = await neuron(i);
          if (input instanceof Uint8Array) {
            if (input.byteLength < bundleBytes) throw argError(`packed bundle ${i} of layer ${layer} has ${input.byteLength} bytes, needs ${bundleBytes}`);
            buf.set(input.subarray(0, bundleBytes), at);
          } else {
            packBundle(this.plan.bundle, input, buf, at);
          }
          this.bundleCrcs[layer * hiddenDim + i] = crc32(buf.subarray(at, at + bundleBytes));
        }
        const chunk = buf.subarray(0, count * bundleStride);
        crc.update(chunk);
        await this.sink.write(section.offset + start * bundleStride, chunk);
      }
      this.sectionCrcs.set(section.name, crc.value);
      await this.padAfter(section);
      this.layersDone[layer] = true;
    });
  }

  /**
   * Writes the ffn.crc section, then the header and manifest with every section's CRC. Returns the
   * final manifest. Throws BAD_ARGUMENT if a tensor, the tokenizer or a layer is missing.
   */
  async finish(): Promise<Manifest> {
    const m = this.plan.manifest;
    if (this.nextTensor < m.tensors.length) throw argError(`tensor "${m.tensors[this.nextTensor].name}" and later ones are not written`);
    const tok = this.sections.get(m.tokenizer.section)!;
    if (!this.sectionCrcs.has(tok.name) && tok.length > 0) throw argError("the tokenizer is not written");
    const missing = this.layersDone.flatMap((done, l) => (done ? [] : [l]));
    if (missing.length > 0) throw argError(`FFN layers not written: ${missing.join(", ")}`, { layers: missing });
    return this.run(async () => {
      if (m.tensors.length === 0) await this.closeResident();
      if (!this.sectionCrcs.has(tok.name)) await this.writeWhole(tok, new Uint8Array(0));
      const crcBytes = new Uint8Array(this.bundleCrcs.length * BUNDLE_CRC_BYTES);
      const view = new DataView(crcBytes.buffer);
      this.bundleCrcs.forEach((c, k) => view.setUint32(k * BUNDLE_CRC_BYTES, c, true));
      await this.writeWhole(this.sections.get(FFN_CRC_SECTION)!, crcBytes);

      const manifest = JSON.parse(JSON.stringify(m)) as Manifest; // plain JSON: a deep copy keeping key order
      for (const s of manifest.sections) s.crc32 = crcToHex(this.sectionCrcs.get(s.name)!);
      if (this.fingerprintPredictor && manifest.predictor) manifest.predictor.modelFingerprint = crcToHex(this.sectionCrcs.get(FFN_CRC_SECTION)!);
      const json = encodeManifest(manifest);
      // Fixed-width CRCs keep the length the planner reserved; anything else is a bug here.
      if (json.byteLength !== this.plan.manifestLength) throw new Error(`flm writer bug: manifest is ${json.byteLength} bytes, planned ${this.plan.manifestLength}`);
      const head = new Uint8Array(this.plan.dataStart);
      head.set(encodeHeader(json.byteLength, manifest.version), 0);
      head.set(json, HEADER_BYTES);
      await this.sink.write(0, head);
      this.finished = true;
      return manifest;
    });
  }

  /** Runs one operation: no overlap, no use after finish, and a failure mid-write poisons the writer. */
  private async run<T>(op: () => Promise<T>): Promise<T> {
    if (this.finished) throw argError("the writer is finished");
    if (this.failed !== undefined) throw new FlashError("BAD_ARGUMENT", "an earlier write failed; the file is incomplete", {}, { cause: this.failed });
    if (this.busy) throw new FlashError("BUSY", "another FlmWriter call is still running; await each call");
    this.busy = true;
    try {
      return await op();
    } catch (e) {
      this.failed = e;
      throw e;
    } finally {
      this.busy = false;
    }
  }

  /** Writes bytes at `relOffset` in the resident section, zero-filling (and checksumming) the gap before them. */
  private async residentPut(relOffset: number, bytes: Uint8Array): Promise<void> {
    const base = this.sections.get(RESIDENT_SECTION)!.offset;
    if (relOffset > this.residentCursor) {
      const gap = new Uint8Array(relOffset - this.residentCursor);
      this.residentCrc.update(gap);
      await this.sink.write(base + this.residentCursor, gap);
    }
    this.residentCrc.update(bytes);
    await this.sink.write(base + relOffset, bytes);
    this.residentCursor = relOffset + bytes.byteLength;
  }

  /** Quantizes (in chunks of rows, to bound memory) or copies a q8 tensor, then its scales. */
  private async writeQ8(t: TensorEntry, data: Float32Array | QuantizedRows, cols: number): Promise<void> {
    const rows = t.length / cols;
    let scales: Float32Array;
    if (data instanceof Float32Array) {
      scales = new Float32Array(rows);
      const rowsPerChunk = Math.max(1, Math.floor(DEFAULT_CHUNK_BYTES / cols));
      const q = new Int8Array(Math.min(rows, rowsPerChunk) * cols);
      for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
        const n = Math.min(rowsPerChunk, rows - r0);
        for (let r = 0; r < n; r++) scales[r0 + r] = quantizeVector(data, q, r * cols, (r0 + r) * cols, cols);
        await this.residentPut(t.offset + r0 * cols, new Uint8Array(q.buffer, 0, n * cols));
      }
    } else {
      await this.residentPut(t.offset, new Uint8Array(data.q.buffer, data.q.byteOffset, data.q.byteLength));
      scales = data.scales;
    }
    await this.residentPut(t.scaleOffset!, f32ToBytes(scales));
  }

  /** Encodes f32 rows as f16/q8_0/q4_0 in chunks of rows (to bound memory), or copies rows already encoded. */
  private async writeRows(t: TensorEntry, dtype: RowDtype, data: Float32Array | { raw: Uint8Array }, cols: number): Promise<void> {
    if (!(data instanceof Float32Array)) return this.residentPut(t.offset, data.raw);
    const rows = data.length / cols;
    const per = rowBytes(dtype, cols);
    const rowsPerChunk = Math.max(1, Math.floor(DEFAULT_CHUNK_BYTES / (cols * 4)));
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
      const n = Math.min(rowsPerChunk, rows - r0);
      await this.residentPut(t.offset + r0 * per, encodeRows(dtype, data.subarray(r0 * cols, (r0 + n) * cols)));
    }
  }

  /**
   * A column-blocked matrix (§3.2.1): the rows are encoded whole (q8: quantized per row, so the
   * scales are those of the row-major file), then rearranged into blocks and written in file order
   * (the section CRC runs over the bytes in order). Holds the encoded tensor twice in memory.
   */
  private async writeColumnBlocked(t: TensorEntry, data: Float32Array | QuantizedRows | { raw: Uint8Array }, cols: number): Promise<void> {
    const rows = t.length / rowBytes(t.dtype, cols);
    let encoded: Uint8Array;
    let scales: Float32Array | undefined;
    if (data instanceof Float32Array) {
      if (t.dtype === "f32") encoded = f32ToBytes(data);
      else if (isRowDtype(t.dtype)) encoded = encodeRows(t.dtype, data);
      else {
        const q = new Int8Array(data.length);
        scales = new Float32Array(rows);
        for (let r = 0; r < rows; r++) scales[r] = quantizeVector(data, q, r * cols, r * cols, cols);
        encoded = new Uint8Array(q.buffer);
      }
    } else if ("raw" in data) {
      encoded = data.raw;
    } else {
      encoded = new Uint8Array(data.q.buffer, data.q.byteOffset, data.q.byteLength);
      scales = data.scales;
    }
    const { blockRowBytes, blocks } = columnBlockBytes(t);
    const stored = new Uint8Array(t.length);
    rowsToBlocks(encoded, stored, rows, blockRowBytes, blocks);
    await this.residentPut(t.offset, stored);
    if (t.dtype === "q8") await this.residentPut(t.scaleOffset!, f32ToBytes(scales!));
  }

  private async closeResident(): Promise<void> {
    const s = this.sections.get(RESIDENT_SECTION)!;
    this.sectionCrcs.set(s.name, this.residentCrc.value);
    await this.padAfter(s);
  }

  /** Writes a section given whole, its CRC and its trailing padding. */
  private async writeWhole(s: SectionEntry, bytes: Uint8Array): Promise<void> {
    this.sectionCrcs.set(s.name, crc32(bytes));
    if (bytes.byteLength > 0) await this.sink.write(s.offset, bytes);
    await this.padAfter(s);
  }

  /** Zero-fills from the end of section `s` to the next section (or the end of the file). */
  private async padAfter(s: SectionEntry): Promise<void> {
    const end = s.offset + s.length;
    const padded = this.plan.paddedEnd.get(s.name)!;
    if (padded > end) await this.sink.write(end, new Uint8Array(padded - end));
  }
}
