import { FlashError } from "../errors.js";
import { alignUp } from "./bytes.js";
import { bundleLayout } from "./bundle.js";
import { checkRowLength, rowBytes } from "./rows.js";
import type { BundleLayout } from "./bundle.js";
import { BUNDLE_CRC_BYTES, DEFAULT_BUNDLE_ALIGNMENT, FFN_CRC_SECTION, FLM_VERSION, FLM_VERSION_ROWS, HEADER_BYTES, RESIDENT_SECTION, SECTION_ALIGNMENT, TENSOR_ALIGNMENT, TOKENIZER_SECTION, ffnSectionName } from "./constants.js";
import { encodeManifest, validateConfig, validateManifest } from "./manifest.js";
import type { Architecture, Dtype, Manifest, ModelConfig, PredictorInfo, SectionEntry, TensorEntry, TokenizerKind } from "./types.js";

/**
 * Computes where everything goes before a byte is written, so the writer can be positional and
 * streaming. Section order: resident, tokenizer, ffn.crc, ffn.0 … ffn.{L-1}: the small sections
 * first, so a loader reads everything it keeps with a few reads near the start of the file.
 */

/** A resident tensor the caller will supply. */
export interface TensorDeclaration {
  /** Unique name. */
  name: string;
  /** Dimensions, outermost first (row-major; q8 rows are the last dimension). */
  shape: readonly number[];
  /** Storage type; defaults to `dtype.resident` for matrices (rank ≥ 2) and f32 for vectors (norms, biases). */
  dtype?: Dtype;
  /**
   * Store this matrix column-blocked, blocks of this many columns (docs/FORMAT.md §3.2.1; the file is
   * then version 2). The data is still supplied row-major: the writer rearranges it.
   */
  columnBlock?: number;
}

/** Everything the writer must know up front. */
export interface FlmDeclaration {
  architecture: Architecture;
  config: ModelConfig;
  /** Storage type of the big resident matrices and of the FFN bundles. */
  dtype: { resident: Dtype; ffn: Dtype };
  /** Resident tensors, in the order they will be written. */
  tensors: readonly TensorDeclaration[];
  /** Tokenizer kind and the byte length of the file that will be stored (0 for "none"). */
  tokenizer: { kind: TokenizerKind; byteLength: number };
  /** Bundle stride alignment, a power of two ≥ 16 (default 16; 4096 for direct-I/O per bundle). */
  bundleAlignment?: number;
  /** Free-form provenance stored in the manifest. */
  provenance?: Record<string, unknown>;
  /** Sparsity predictors whose tensors are among `tensors`. */
  predictor?: PredictorInfo;
  /** Set `predictor.modelFingerprint` to this file's ffn.crc CRC at `finish` (predictors converted with their model). */
  fingerprintPredictor?: boolean;
  /** Chat template (Jinja) stored in the manifest. */
  chatTemplate?: string;
}

/** The computed layout of a file. */
export interface FlmPlan {
  /** The manifest with every offset final and every CRC "00000000" (filled in by the writer's finish). */
  manifest: Manifest;
  /** Byte length of the encoded manifest; identical once real CRCs are in (they are fixed-width hex). */
  manifestLength: number;
  /** Offset of the first section: header + manifest rounded up to 4096. */
  dataStart: number;
  /** Total file size: the end of the last section rounded up to 4096. */
  fileSize: number;
  /** Bundle layout of the FFN sections. */
  bundle: BundleLayout;
  /** For each section, where its trailing zero padding ends (the next section's offset or the file end). */
  paddedEnd: Map<string, number>;
}

/** Lays out a file. Throws BAD_ARGUMENT for a bad declaration, or the manifest validator's FormatError. */
export function planFlm(decl: FlmDeclaration): FlmPlan {
  // Check the dims first: they size the loops below.
  const config = validateConfig(decl.config);
  const bundle = bundleLayout(config.dim, decl.dtype.ffn, config.gated, decl.bundleAlignment ?? DEFAULT_BUNDLE_ALIGNMENT);
  const tokBytes = decl.tokenizer.byteLength;
  if (!Number.isSafeInteger(tokBytes) || tokBytes < 0) throw new FlashError("BAD_ARGUMENT", `tokenizer byteLength must be a non-negative integer, got ${tokBytes}`);
  const { tensors, residentBytes } = placeTensors(decl);
  // Section offsets depend on the manifest length, which depends on the offsets' digits: iterate to
  // the fixed point (lengths only grow, so this ends after one or two rounds).
  let dataStart = SECTION_ALIGNMENT;
  for (;;) {
    const sections = placeSections(dataStart, residentBytes, tokBytes, bundle, config);
    const fileSize = alignUp(sections.reduce((m, s) => Math.max(m, s.offset + s.length), dataStart), SECTION_ALIGNMENT);
    const draft: Manifest = {
      format: "flashllm",
      // Version 2 only when it is needed: a file without column blocks stays readable by version-1 readers.
      version: tensors.some((t) => t.columnBlock !== undefined) ? FLM_VERSION : FLM_VERSION_ROWS,
      architecture: decl.architecture,
      config,
      dtype: { ...decl.dtype },
      tensors,
      ffn: {
        bundleBytes: bundle.bundleBytes,
        bundleStride: bundle.bundleStride,
        gated: config.gated,
        dtype: decl.dtype.ffn,
        crcSection: FFN_CRC_SECTION,
        layers: Array.from({ length: config.nLayers }, (_, l) => ({ section: ffnSectionName(l) })),
      },
      tokenizer: { kind: decl.tokenizer.kind, section: TOKENIZER_SECTION },
      sections,
      ...(decl.provenance !== undefined ? { provenance: decl.provenance } : {}),
      ...(decl.predictor !== undefined ? { predictor: decl.predictor } : {}),
      ...(decl.chatTemplate !== undefined ? { chatTemplate: decl.chatTemplate } : {}),
    };
    const manifestLength = encodeManifest(validateManifest(draft, fileSize)).byteLength;
    const need = alignUp(HEADER_BYTES + manifestLength, SECTION_ALIGNMENT);
    if (need <= dataStart) {
      // Validated copy: canonical key order and the full set of checks against the real data start.
      const manifest = validateManifest(draft, fileSize, { dataStart: HEADER_BYTES + manifestLength });
      const paddedEnd = new Map<string, number>();
      const sorted = [...sections].sort((a, b) => a.offset - b.offset);
      sorted.forEach((s, k) => paddedEnd.set(s.name, k + 1 < sorted.length ? sorted[k + 1].offset : fileSize));
      return { manifest, manifestLength, dataStart, fileSize, bundle, paddedEnd };
    }
    dataStart = need;
  }
}

/** Tensor entries in declaration order, each 16-byte aligned; q8 scales right after their data. */
function placeTensors(decl: FlmDeclaration): { tensors: TensorEntry[]; residentBytes: number } {
  let cursor = 0;
  const tensors = decl.tensors.map((t): TensorEntry => {
    const shape = [...t.shape];
    const dtype = t.dtype ?? (shape.length >= 2 ? decl.dtype.resident : "f32");
    const elements = shape.reduce((a, b) => a * b, 1);
    const offset = alignUp(cursor, TENSOR_ALIGNMENT);
    const cols = shape[shape.length - 1];
    checkRowLength(dtype, cols, `tensor "${t.name}"`);
    const length = (elements / cols) * rowBytes(dtype, cols);
    cursor = offset + length;
    const blocked = t.columnBlock !== undefined ? { columnBlock: t.columnBlock } : {};
    if (dtype !== "q8") return { name: t.name, dtype, shape, offset, length, ...blocked };
    const scaleOffset = alignUp(cursor, TENSOR_ALIGNMENT);
    cursor = scaleOffset + (elements / shape[shape.length - 1]) * 4;
    return { name: t.name, dtype, shape, offset, length, ...blocked, scaleOffset };
  });
  return { tensors, residentBytes: cursor };
}

function placeSections(dataStart: number, residentBytes: number, tokBytes: number, bundle: BundleLayout, config: ModelConfig): SectionEntry[] {
  const sections: SectionEntry[] = [];
  let cursor = dataStart;
  const add = (name: string, length: number): void => {
    sections.push({ name, offset: cursor, length, crc32: "00000000" });
    cursor = alignUp(cursor + length, SECTION_ALIGNMENT);
  };
  add(RESIDENT_SECTION, residentBytes);
  add(TOKENIZER_SECTION, tokBytes);
  add(FFN_CRC_SECTION, config.nLayers * config.hiddenDim * BUNDLE_CRC_BYTES);
  for (let l = 0; l < config.nLayers; l++) add(ffnSectionName(l), config.hiddenDim * bundle.bundleStride);
  return sections;
}
