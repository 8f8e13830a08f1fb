/**
 * Hugging Face checkpoint input: streaming safetensors reading (single file or sharded), `config.json`
 * mapping, and lazy access to the tensors under flashllm's canonical names.
 */
export { openSafetensors } from "./safetensors.js";
export type { OpenSafetensorsOptions, ReadTensorOptions, SafetensorsFile, TensorReader } from "./safetensors.js";
export { openShardedSafetensors } from "./sharded.js";
export type { OpenShard, ShardedSafetensors } from "./sharded.js";
export { MAX_HEADER_BYTES, parseSafetensorsHeader } from "./safetensors-header.js";
export type { TensorInfo } from "./safetensors-header.js";
export { DTYPE_BYTES, convertToF32, isSupportedDtype } from "./dtype.js";
export type { SafetensorsDtype } from "./dtype.js";
export { SUPPORTED_ARCHITECTURES, mapHfConfig } from "./hf-config.js";
export type { HfFamily, HfModelSpec } from "./hf-config.js";
export { hfTensors } from "./hf-tensors.js";
export type { HfTensors } from "./hf-tensors.js";
