/**
 * GGUF (llama.cpp's model format): a streamed reader over any FlashSource, dequantizers of the common
 * types, the `llama` architecture mapped to flashllm's model terms, the tokenizer from metadata, a
 * conversion to `.flm`, and a small streaming writer for tests and benchmarks.
 */
export { GGML_TYPES, GGUF_LIMITS, GGUF_MAGIC, POWERINFER_MAGIC, GgmlType, GgufValueType, ggmlTypeName } from "./constants.js";
export type { GgmlTypeInfo } from "./constants.js";
export { GgufFile, isGguf, openGguf } from "./reader.js";
export type { GgufKv, GgufTensorInfo, GgufValue, OpenGgufOptions } from "./reader.js";
export { dequantize, typeBytes } from "./dequant.js";
export { quantize } from "./quantize.js";
export { f16ToF32, f32ToF16 } from "./half.js";
export { GgufWriter, kv } from "./writer.js";
export type { GgufTensorDecl } from "./writer.js";
export { GGUF_ARCHITECTURES, ggufModel, f32Below } from "./model.js";
export type { GgufPredictors } from "./model.js";
export type { GgufModel, GgufModelOptions } from "./model.js";
export { TokenType, ggufTokenizer } from "./tokenizer.js";
export type { GgufTokenizer } from "./tokenizer.js";
export { convertGguf, keepDtype } from "./convert.js";
export type { ConvertGgufOptions } from "./convert.js";
