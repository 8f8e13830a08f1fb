/**
 * flashllm SDK: run language models whose FFN weights stay on storage. Storage-agnostic: it never
 * imports `fs` or DOM APIs; backends implement {@link FlashSource}.
 *
 * This entry is the public face: open a model from any storage, generate, convert and inspect files,
 * handle typed errors. Test helpers are in `@flashllm/sdk/testing`; the engine's building blocks
 * (kernels, caches, planners, predictor training) in `@flashllm/sdk/internal`, without a stability promise.
 */

// Errors: every deliberate failure is a FlashError with a stable code.
export { FlashError, FormatError, SourceError, BudgetError, AbortedError, ShardError, throwIfAborted } from "./errors.js";
export type { FlashErrorCode } from "./errors.js";

// Storage: what a backend implements, and an in-memory one.
export { MemorySource } from "./source.js";
export type { FlashSource, ReadRequest } from "./source.js";

// Opening a model and generating.
export { openFlashModel, FlashModel } from "./flash/open.js";
export type { OpenFlashOptions } from "./flash/open.js";
export { LanguageModel } from "./language-model.js";
export type { GenerateOptions, GeneratedToken, GenerationStats, FinishReason } from "./language-model.js";
export type { SamplingOptions } from "./sampler.js";
export type { ModelConfig } from "./model/config.js";
export type { MemoryPlan } from "./flash/memory-plan.js";
export type { FlashStats } from "./flash/stats.js";
export type { FlashStrategy } from "./flash/flash-ffn.js";
export type { NeuronSelector } from "./sparsity/selector.js";
export type { Tokenizer } from "./tokenizer/tokenizer.js";
export { loadLlama2c } from "./load.js";
export type { LoadLlama2cOptions } from "./load.js";

// Files: converting into the .flm container, and reading one.
export { convertLlama2c, convertTensors } from "./convert/from-llama2c.js";
export type { ConvertOptions, TokenizerFile } from "./convert/from-llama2c.js";
export { openFlm, FlmFile, MemorySink } from "./format/index.js";
export type { FlmSink, Manifest, VerifyReport, SectionCheck } from "./format/index.js";

// Chat: templates stored with the model (`LanguageModel.chat`).
export type { ChatOptions } from "./language-model.js";
export type { ChatMessage } from "./chat/template.js";

// Bringing a model: GGUF files (llama.cpp, ollama) converted to .flm, streamed from any source.
export { openGguf, isGguf, convertGguf } from "./gguf/index.js";
export type { GgufFile, ConvertGgufOptions } from "./gguf/index.js";

// Every core and more than 4 GiB: the sharded engine (a host spawns the workers: node-io, web-io).
export { ShardedFlashModel } from "./shard/open-sharded.js";
export type { ShardedOpenOptions, ShardedMemoryPlan } from "./shard/open-sharded.js";
export type { ShardHost, ShardPort } from "./shard/host.js";
export { runShard } from "./shard/runtime.js";
export { localShardPort } from "./shard/local-port.js";
export { ShardThreadMap, ShardThreadPorts, hostShards, type ShardEnvelope, type ThreadChannel, type ThreadEndpoint } from "./shard/thread.js";
export type { ShardEndpoint } from "./shard/runtime.js";
