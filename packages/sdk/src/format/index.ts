/**
 * The `.flm` container (docs/FORMAT.md): one file holding a model's resident tensors, tokenizer and
 * FFN neuron bundles, with a JSON manifest and CRC-32 checksums.
 */
export { FLM_MAGIC, FLM_VERSION, HEADER_BYTES, SECTION_ALIGNMENT, TENSOR_ALIGNMENT, BUNDLE_HEADER_BYTES, DEFAULT_BUNDLE_ALIGNMENT, LIMITS, RESIDENT_SECTION, TOKENIZER_SECTION, FFN_CRC_SECTION, ffnSectionName } from "./constants.js";
export type { Architecture, Dtype, RopeStyle, Activation, NormKind, TokenizerKind, ModelConfig, TensorEntry, FfnInfo, TokenizerInfo, SectionEntry, Manifest, PredictorInfo, PredictorInput } from "./types.js";
export { isReluFamily } from "./types.js";
export { crc32, Crc32, crcToHex, hexToCrc } from "./crc32.js";
export { quantizeVector, quantizeRows, dequantizeRows, roundHalfAway } from "./quant.js";
export type { QuantizedRows } from "./quant.js";
export { BUNDLE_FIELDS, bundleLayout, packBundle, unpackBundle } from "./bundle.js";
export type { BundleLayout, NeuronWeights, UnpackedBundle } from "./bundle.js";
export { encodeHeader, decodeHeader } from "./header.js";
export type { FlmHeader } from "./header.js";
export { validateManifest, validateConfig, encodeManifest, decodeManifest } from "./manifest.js";
export type { ValidateOptions } from "./manifest.js";
export { planFlm } from "./layout.js";
export type { FlmDeclaration, FlmPlan, TensorDeclaration } from "./layout.js";
export { MemorySink } from "./sink.js";
export type { FlmSink } from "./sink.js";
export { FlmWriter } from "./writer.js";
export type { NeuronInput, NeuronSource, WriteLayerOptions } from "./writer.js";
export { openFlm, FlmFile, residentData } from "./reader.js";
export type { ReadOptions, ReadSectionOptions, ResidentTensor, SectionCheck, VerifyReport, VerifyOptions } from "./reader.js";
