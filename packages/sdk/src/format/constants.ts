/**
 * Fixed numbers of the `.flm` container (docs/FORMAT.md). Changing any of them changes the format, so
 * they live in one place and the spec, writer, reader and tests all use these names.
 */

/** The 8 ASCII bytes every `.flm` file starts with. */
export const FLM_MAGIC = "FLASHLLM";
/**
 * The newest container version: 2 adds column-blocked tensors (`columnBlock`, docs/FORMAT.md §3.2.1).
 * The writer writes 2 only when a tensor uses them, else 1, so a file states the oldest reader that
 * can read it; this reader reads both.
 */
export const FLM_VERSION = 2;
/** Version of files without column-blocked tensors (readable by every reader). */
export const FLM_VERSION_ROWS = 1;
/** Versions this reader accepts. */
export const FLM_READ_VERSIONS: readonly number[] = [1, 2];
/** Bytes of the fixed header: magic (8), u32 version, u32 manifest byte length. */
export const HEADER_BYTES = 16;
/** Every section starts at a multiple of this, so sections can be read with O_DIRECT. */
export const SECTION_ALIGNMENT = 4096;
/** Resident tensors (and q8 scale arrays) start at multiples of this inside the resident section. */
export const TENSOR_ALIGNMENT = 16;
/** Bytes of a bundle's header: `[scale_gate f32][scale_up f32][scale_down f32][bias_up f32]` (kernel ABI). */
export const BUNDLE_HEADER_BYTES = 16;
/** Smallest bundle stride alignment: the kernel's slot stride must be 16-byte aligned. */
export const MIN_BUNDLE_ALIGNMENT = 16;
/** Largest bundle stride alignment a writer may pick (1 GiB: far beyond any useful page size). */
export const MAX_BUNDLE_ALIGNMENT = 1 << 30;
/** Default bundle stride alignment: dense packing; 4096 makes every bundle direct-I/O aligned. */
export const DEFAULT_BUNDLE_ALIGNMENT = 16;
/** Bytes per entry of the `ffn.crc` section (one little-endian u32 per bundle). */
export const BUNDLE_CRC_BYTES = 4;

/**
 * Upper bounds a reader enforces before trusting any number in a manifest. They are far above real
 * models (LLaMA-2-70B: dim 8192, hidden 28672, 80 layers) and keep every derived size a safe integer.
 */
export const LIMITS = {
  /** Largest accepted manifest (JSON) in bytes. */
  manifestBytes: 16 * 1024 * 1024,
  dim: 65536,
  hiddenDim: 1 << 20,
  nLayers: 1024,
  nHeads: 65536,
  vocabSize: 1 << 22,
  seqLen: 1 << 20,
  maxPositions: 1 << 20,
  /** Entries of `sections`. */
  sections: 65536,
  /** Entries of `tensors`. */
  tensors: 65536,
  /** Dimensions of one tensor's shape. */
  tensorRank: 4,
  /** Size of one dimension of a tensor's shape. */
  tensorDim: 1 << 30,
  /** Characters of a tensor or section name. */
  nameLength: 256,
  /** Characters of the chat template (real ones are a few KiB; the largest known are ~20 KiB). */
  chatTemplateLength: 1 << 20,
  /** Magnitude bound of a fatrelu threshold (ProSparse's is 0.01; anything near this bound zeroes every neuron). */
  activationThreshold: 1e6,
} as const;

/** Name of the section with the resident tensors. */
export const RESIDENT_SECTION = "resident";
/** Name of the section with the raw tokenizer file. */
export const TOKENIZER_SECTION = "tokenizer";
/** Name of the section with one CRC-32 per bundle. */
export const FFN_CRC_SECTION = "ffn.crc";
/** Name of layer `l`'s FFN bundle section. */
export function ffnSectionName(layer: number): string {
  return `ffn.${layer}`;
}
