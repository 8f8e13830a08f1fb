/**
 * flashllm SDK: run language models whose FFN weights stay on storage. Storage-agnostic: it never
 * imports `fs` or DOM APIs; backends implement {@link FlashSource}.
 */
export * from "./errors.js";
export * from "./source.js";
export { Kernels, Act } from "./kernels/loader.js";
export type { KernelExports, WasmBlock, ActivationName } from "./kernels/loader.js";
export type { ModelConfig } from "./model/config.js";
export { headSize, kvDim } from "./model/config.js";
export { readLlama2cCheckpoint } from "./model/llama2c.js";
export type { Llama2cCheckpoint, Llama2cOptions } from "./model/llama2c.js";
export { WeightStore, matvec, transpose } from "./model/weights.js";
export type { Matrix, TensorData } from "./model/weights.js";
export { DenseFfn } from "./model/ffn.js";
export type { FfnBackend } from "./model/ffn.js";
export { Transformer } from "./model/transformer.js";
export { Llama2cTokenizer, BOS, EOS, runcPrintable } from "./tokenizer/llama2c.js";
export type { UnknownPolicy } from "./tokenizer/llama2c.js";
export { Sampler, XorShiftRng, argmax, softmaxF32 } from "./sampler.js";
export type { SamplingOptions } from "./sampler.js";
export { LanguageModel } from "./language-model.js";
export type { GenerateOptions, GeneratedToken, GenerationStats, FinishReason } from "./language-model.js";
export { loadLlama2c } from "./load.js";
export type { LoadLlama2cOptions } from "./load.js";
export * from "./format/index.js";
export { convertLlama2c } from "./convert/from-llama2c.js";
export type { ConvertOptions } from "./convert/from-llama2c.js";
export { NeuronCache } from "./cache/neuron-cache.js";
export { ReadPlanner } from "./cache/read-planner.js";
export { AllNeurons, FixedSelector } from "./sparsity/selector.js";
export type { NeuronSelector } from "./sparsity/selector.js";
export { FlashFfn, flashScratchBytes, maxUsefulSlots } from "./flash/flash-ffn.js";
export type { FfnStorageLayout, FlashStrategy, FlashFfnOptions } from "./flash/flash-ffn.js";
export type { FlashStats } from "./flash/stats.js";
export { planMemory, residentBytes } from "./flash/memory-plan.js";
export type { MemoryPlan } from "./flash/memory-plan.js";
export { openFlashModel, FlashModel } from "./flash/open.js";
export type { OpenFlashOptions } from "./flash/open.js";
