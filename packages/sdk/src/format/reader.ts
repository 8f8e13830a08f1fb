import { FlashError, FormatError } from "../errors.js";
import { isRowDtype } from "./rows.js";
import type { RowDtype } from "./rows.js";
import type { FlashSource } from "../source.js";
import { alignUp, bytesToF32, int8View } from "./bytes.js";
import { bundleLayout } from "./bundle.js";
import type { BundleLayout } from "./bundle.js";
import { BUNDLE_CRC_BYTES, HEADER_BYTES, MAX_BUNDLE_ALIGNMENT, MIN_BUNDLE_ALIGNMENT } from "./constants.js";
import { blocksToRows, columnBlockBytes } from "./column-blocks.js";
import { Crc32, crc32, crcToHex, hexToCrc } from "./crc32.js";
import { decodeHeader } from "./header.js";
import type { FlmHeader } from "./header.js";
import { decodeManifest, validateManifest } from "./manifest.js";
import type { Manifest, SectionEntry } from "./types.js";

/**
 * Reading a `.flm` file from any {@link FlashSource}. `openFlm` reads only the header and manifest
 * (one read of the first 64 KiB, a second only for a larger manifest) and validates everything that
 * can be checked without the big sections. Section contents are checked against their CRC when read.
 */

/** Options of the read helpers. */
export interface ReadOptions {
  /** Check the section's CRC-32 (default true). */
  verify?: boolean;
  signal?: AbortSignal;
}

/** Options of {@link FlmFile.readSection}. */
export interface ReadSectionOptions extends ReadOptions {
  /** Where to put the bytes (e.g. a view of WASM memory); at least the section's length. Default: a new buffer. */
  target?: Uint8Array;
}

/** A resident tensor as views into the resident section's bytes. */
export type ResidentTensor =
  | { name: string; dtype: "f32"; shape: number[]; data: Float32Array }
  | { name: string; dtype: "q8"; shape: number[]; q: Int8Array; scales: Float32Array }
  /** f16 / q8_0 / q4_0: the rows' bytes as stored (format/rows.ts). */
  | { name: string; dtype: RowDtype; shape: number[]; raw: Uint8Array };

/** A resident tensor's data as {@link FlmWriter.writeTensor} and `WeightStore.upload` take it. */
export function residentData(t: ResidentTensor): Float32Array | { q: Int8Array; scales: Float32Array } | { dtype: RowDtype; raw: Uint8Array } {
  return t.dtype === "f32" ? t.data : t.dtype === "q8" ? { q: t.q, scales: t.scales } : { dtype: t.dtype, raw: t.raw };
}

/** Result of one section's check in {@link FlmFile.verifyAll}. */
export interface SectionCheck {
  name: string;
  /** CRC from the manifest. */
  expected: number;
  /** CRC of the bytes in the file. */
  actual: number;
  ok: boolean;
}

/** Result of {@link FlmFile.verifyAll}. */
export interface VerifyReport {
  /** True when every section and every bundle matches its checksum. */
  ok: boolean;
  /** One entry per section, in file order. */
  sections: SectionCheck[];
  /** Bundles checked against ffn.crc (0 when ffn.crc itself is corrupt). */
  bundlesChecked: number;
  /** Bundles whose CRC differs from ffn.crc (at most the first 100 are listed). */
  badBundles: { layer: number; neuron: number }[];
  /** The CHECKSUM_MISMATCH errors, one per bad section, plus one per listed bad bundle. */
  errors: FormatError[];
}

/** Options of {@link FlmFile.verifyAll}. */
export interface VerifyOptions {
  signal?: AbortSignal;
  /** Bytes per read (FFN sections: rounded down to whole bundles). Default 8 MiB. */
  chunkBytes?: number;
  /** Called after each chunk with bytes checked so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

const FIRST_READ = 64 * 1024;
const MAX_LISTED_BAD_BUNDLES = 100;

/** Opens a `.flm` file: reads and validates the header and manifest. Throws FormatError (see docs/FORMAT.md §6). */
export async function openFlm(source: FlashSource, options: { signal?: AbortSignal } = {}): Promise<FlmFile> {
  const fileSize = source.byteLength;
  if (!Number.isSafeInteger(fileSize) || fileSize < 0) throw new FormatError("BAD_HEADER", `source reports an invalid size ${fileSize}`);
  const first = new Uint8Array(Math.min(fileSize, FIRST_READ));
  await source.read([{ offset: 0, length: first.byteLength, target: first }], options.signal);
  const header = decodeHeader(first, fileSize);
  const end = HEADER_BYTES + header.manifestLength;
  let manifestBytes: Uint8Array;
  if (end <= first.byteLength) {
    manifestBytes = first.subarray(HEADER_BYTES, end);
  } else {
    manifestBytes = new Uint8Array(header.manifestLength);
    await source.read([{ offset: HEADER_BYTES, length: header.manifestLength, target: manifestBytes }], options.signal);
  }
  const manifest = validateManifest(decodeManifest(manifestBytes), fileSize, { dataStart: end });
  if (manifest.version !== header.version) {
    throw new FormatError("BAD_VERSION", `manifest field version: ${manifest.version} disagrees with the header's version ${header.version}`, { field: "version", expected: header.version, actual: manifest.version });
  }
  return new FlmFile(source, header, manifest);
}

/** An open `.flm` file: its validated manifest and helpers to read sections, tensors and bundles. */
export class FlmFile {
  /** Layout of every bundle in the FFN sections (what the kernel's slots hold). */
  readonly bundle: BundleLayout;
  private readonly sectionsByName: Map<string, SectionEntry>;
  private bundleCrcTable: Uint32Array | undefined;

  /** Use {@link openFlm}: it validates the manifest this constructor trusts. */
  constructor(
    /** The storage the file is read from. */
    readonly source: FlashSource,
    /** The decoded header. */
    readonly header: FlmHeader,
    /** The validated manifest. */
    readonly manifest: Manifest,
  ) {
    this.sectionsByName = new Map(manifest.sections.map((s) => [s.name, s]));
    const { ffn, config } = manifest;
    this.bundle = bundleLayout(config.dim, ffn.dtype, ffn.gated, strideAlignment(ffn.bundleBytes, ffn.bundleStride));
  }

  /** The section table entry named `name`; throws BAD_ARGUMENT if there is none. */
  section(name: string): SectionEntry {
    const s = this.sectionsByName.get(name);
    if (!s) throw new FlashError("BAD_ARGUMENT", `no section "${name}" in this file`, { section: name });
    return s;
  }

  /** True if the file has a section `name` (extensions are optional). */
  hasSection(name: string): boolean {
    return this.sectionsByName.has(name);
  }

  /** Reads a whole section; with `verify` (default) checks its CRC and throws CHECKSUM_MISMATCH naming it. */
  async readSection(name: string, options: ReadSectionOptions = {}): Promise<Uint8Array> {
    const s = this.section(name);
    if (options.target && options.target.byteLength < s.length) {
      throw new FlashError("BAD_ARGUMENT", `target of ${options.target.byteLength} bytes is smaller than section "${name}" (${s.length} bytes)`);
    }
    const target = options.target ? options.target.subarray(0, s.length) : new Uint8Array(s.length);
    if (s.length > 0) await this.source.read([{ offset: s.offset, length: s.length, target }], options.signal);
    if (options.verify ?? true) checkCrc(s, crc32(target));
    return target;
  }

  /**
   * Reads the resident section (one read) and returns its tensors by name, row-major: views of the
   * section's bytes, or for column-blocked tensors (§3.2.1) row-major copies of them.
   */
  async readResident(options: ReadOptions = {}): Promise<Map<string, ResidentTensor>> {
    const section = await this.readSection("resident", options);
    const out = new Map<string, ResidentTensor>();
    for (const t of this.manifest.tensors) {
      const elements = t.shape.reduce((a, b) => a * b, 1);
      const shape = [...t.shape];
      // Column-blocked data (§3.2.1) is put back in row-major order, in a copy of its own.
      let bytes = section;
      let at = t.offset;
      if (t.columnBlock !== undefined) {
        const { rows, blockRowBytes, blocks } = columnBlockBytes(t);
        bytes = new Uint8Array(t.length);
        at = 0;
        blocksToRows(section.subarray(t.offset, t.offset + t.length), bytes, rows, blockRowBytes, blocks);
      }
      if (t.dtype === "f32") {
        out.set(t.name, { name: t.name, dtype: "f32", shape, data: bytesToF32(bytes, at, elements) });
      } else if (isRowDtype(t.dtype)) {
        out.set(t.name, { name: t.name, dtype: t.dtype, shape, raw: bytes.subarray(at, at + t.length) });
      } else {
        const rows = elements / shape[shape.length - 1];
        out.set(t.name, { name: t.name, dtype: "q8", shape, q: int8View(bytes, at, elements), scales: bytesToF32(section, t.scaleOffset!, rows) });
      }
    }
    return out;
  }

  /** The stored tokenizer file's bytes (empty for kind "none"). */
  async readTokenizer(options: ReadOptions = {}): Promise<Uint8Array> {
    return this.readSection(this.manifest.tokenizer.section, options);
  }

  /** Absolute offset of layer `layer`'s first bundle. */
  ffnLayerOffset(layer: number): number {
    checkIndex("layer", layer, this.manifest.config.nLayers);
    return this.section(this.manifest.ffn.layers[layer].section).offset;
  }

  /** Absolute offset of neuron `neuron`'s bundle in layer `layer`: layer offset + neuron·bundleStride. */
  bundleOffset(layer: number, neuron: number): number {
    checkIndex("neuron", neuron, this.manifest.config.hiddenDim);
    return this.ffnLayerOffset(layer) + neuron * this.manifest.ffn.bundleStride;
  }

  /** Reads (and by default verifies) the ffn.crc section and keeps it for {@link bundleCrc} and {@link verifyBundle}. */
  async loadBundleCrcs(options: ReadOptions = {}): Promise<Uint32Array> {
    if (this.bundleCrcTable) return this.bundleCrcTable;
    const bytes = await this.readSection(this.manifest.ffn.crcSection, options);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const table = new Uint32Array(bytes.byteLength / BUNDLE_CRC_BYTES);
    for (let k = 0; k < table.length; k++) table[k] = view.getUint32(k * BUNDLE_CRC_BYTES, true);
    this.bundleCrcTable = table;
    return table;
  }

  /** The stored CRC-32 of a bundle. Call {@link loadBundleCrcs} first. */
  bundleCrc(layer: number, neuron: number): number {
    const { nLayers, hiddenDim } = this.manifest.config;
    checkIndex("layer", layer, nLayers);
    checkIndex("neuron", neuron, hiddenDim);
    if (!this.bundleCrcTable) throw new FlashError("BAD_ARGUMENT", "bundle CRCs are not loaded: await loadBundleCrcs() first");
    return this.bundleCrcTable[layer * hiddenDim + neuron];
  }

  /**
   * Checks bundle bytes (the first bundleBytes of `bytes`, e.g. a cache slot just filled) against
   * the stored CRC; throws CHECKSUM_MISMATCH naming the layer section and neuron.
   */
  verifyBundle(layer: number, neuron: number, bytes: Uint8Array): void {
    const expected = this.bundleCrc(layer, neuron);
    const actual = crc32(bytes.subarray(0, this.bundle.bundleBytes));
    if (actual !== expected) throw bundleMismatch(this.manifest.ffn.layers[layer].section, layer, neuron, expected, actual);
  }

  /** Reads one bundle (bundleBytes bytes); with `verify` (default) loads the CRC table if needed and checks it. */
  async readBundle(layer: number, neuron: number, options: ReadOptions = {}): Promise<Uint8Array> {
    const target = new Uint8Array(this.bundle.bundleBytes);
    await this.source.read([{ offset: this.bundleOffset(layer, neuron), length: target.byteLength, target }], options.signal);
    if (options.verify ?? true) {
      await this.loadBundleCrcs(options);
      this.verifyBundle(layer, neuron, target);
    }
    return target;
  }

  /**
   * Streams every section through CRC-32 and checks every bundle against ffn.crc (for `flashllm
   * inspect`). Reports mismatches instead of throwing; read failures still throw.
   */
  async verifyAll(options: VerifyOptions = {}): Promise<VerifyReport> {
    const { ffn, config } = this.manifest;
    const chunkBytes = Math.max(1, options.chunkBytes ?? 8 * 1024 * 1024);
    const total = this.manifest.sections.reduce((n, s) => n + s.length, 0);
    const report: VerifyReport = { ok: true, sections: [], bundlesChecked: 0, badBundles: [], errors: [] };
    // The bundle table is only trusted if its own section checks out.
    const crcEntry = this.section(ffn.crcSection);
    const crcBytes = await this.readSection(crcEntry.name, { verify: false, signal: options.signal });
    const table = crc32(crcBytes) === hexToCrc(crcEntry.crc32) ? await this.loadBundleCrcs({ verify: false, signal: options.signal }) : undefined;
    const layerOf = new Map(ffn.layers.map((l, k) => [l.section, k]));
    let done = 0;
    for (const s of [...this.manifest.sections].sort((a, b) => a.offset - b.offset)) {
      const layer = layerOf.get(s.name);
      const step = layer === undefined ? chunkBytes : Math.max(1, Math.floor(chunkBytes / ffn.bundleStride)) * ffn.bundleStride;
      const buf = new Uint8Array(Math.min(step, s.length));
      const crc = new Crc32();
      for (let at = 0; at < s.length; at += step) {
        const chunk = buf.subarray(0, Math.min(step, s.length - at));
        await this.source.read([{ offset: s.offset + at, length: chunk.byteLength, target: chunk }], options.signal);
        crc.update(chunk);
        if (layer !== undefined && table) {
          const first = at / ffn.bundleStride;
          for (let k = 0; k * ffn.bundleStride < chunk.byteLength; k++) {
            const neuron = first + k;
            const actual = crc32(chunk.subarray(k * ffn.bundleStride, k * ffn.bundleStride + ffn.bundleBytes));
            const expected = table[layer * config.hiddenDim + neuron];
            report.bundlesChecked++;
            if (actual !== expected && report.badBundles.length < MAX_LISTED_BAD_BUNDLES) {
              report.badBundles.push({ layer, neuron });
              report.errors.push(bundleMismatch(s.name, layer, neuron, expected, actual));
            }
            if (actual !== expected) report.ok = false;
          }
        }
        done += chunk.byteLength;
        options.onProgress?.(done, total);
      }
      const expected = hexToCrc(s.crc32);
      const ok = crc.value === expected;
      report.sections.push({ name: s.name, expected, actual: crc.value, ok });
      if (!ok) {
        report.ok = false;
        report.errors.push(sectionMismatch(s, crc.value));
      }
    }
    return report;
  }
}

/** The smallest power-of-two alignment that turns bundleBytes into bundleStride (validated to exist). */
function strideAlignment(bundleBytes: number, bundleStride: number): number {
  for (let p = MIN_BUNDLE_ALIGNMENT; p <= MAX_BUNDLE_ALIGNMENT; p *= 2) if (alignUp(bundleBytes, p) === bundleStride) return p;
  throw new FormatError("BAD_MANIFEST", `ffn.bundleStride ${bundleStride} is not bundleBytes ${bundleBytes} rounded to a power of two`);
}

function checkIndex(what: string, i: number, n: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new FlashError("BAD_ARGUMENT", `${what} ${i} is not in [0, ${n})`, { [what]: i, limit: n });
}

function sectionMismatch(s: SectionEntry, actual: number): FormatError {
  return new FormatError("CHECKSUM_MISMATCH", `checksum mismatch in section "${s.name}": manifest says crc32 ${s.crc32}, the ${s.length} bytes at offset ${s.offset} have ${crcToHex(actual)}`, {
    section: s.name,
    expected: s.crc32,
    actual: crcToHex(actual),
  });
}

function checkCrc(s: SectionEntry, actual: number): void {
  if (actual !== hexToCrc(s.crc32)) throw sectionMismatch(s, actual);
}

function bundleMismatch(section: string, layer: number, neuron: number, expected: number, actual: number): FormatError {
  return new FormatError("CHECKSUM_MISMATCH", `checksum mismatch in section "${section}", bundle of neuron ${neuron} (layer ${layer}): ffn.crc says ${crcToHex(expected)}, bytes have ${crcToHex(actual)}`, {
    section,
    layer,
    neuron,
    expected: crcToHex(expected),
    actual: crcToHex(actual),
  });
}
