/** Node storage and tools for flashllm. */
export { SHIPPED_MODELS_DIR, DEFAULT_MODEL, DEFAULT_TOKENIZER } from "./paths.js";
export { NodeFileSource, ThreadedFileSource } from "./source/index.js";
export type { NodeFileSourceOptions, NodeFileSourceStats, ThreadedFileSourceOptions } from "./source/index.js";
export { NodeFileSink } from "./file-sink.js";
export { parseBudget } from "./budget.js";
export { cacheDir, convertFile, flmFor } from "./model-files.js";
export { NodeShardHost, shardWorkerScript } from "./shards/node-shard-host.js";
export type { NodeShardHostOptions, ShardWorkerData } from "./shards/node-shard-host.js";
export { openModelFile } from "./shards/open-model-file.js";
export type { OpenModelFileOptions } from "./shards/open-model-file.js";
export { startServer, ApiError, GenerationQueue } from "./serve/index.js";
export type { FlashServer, ServeOptions, ServeEvent } from "./serve/index.js";
