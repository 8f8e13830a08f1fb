/**
 * flashllm in the browser: storage backends for the SDK's `FlashSource` (OPFS, a picked `File`, an
 * HTTP server with Range), OPFS import with resumption, and an engine that runs in a dedicated worker
 * behind {@link FlashWorkerClient}. Imports no Node API.
 */
export { OpfsSource, opfsFileHandle } from "./opfs-source.js";
export type { OpfsSourceOptions, SyncAccessHandle } from "./opfs-source.js";
export { BlobSource } from "./blob-source.js";
export type { BlobSourceOptions } from "./blob-source.js";
export { HttpRangeSource, parseContentRange } from "./http-range-source.js";
export type { HttpRangeSourceOptions, HttpRangeSourceStats } from "./http-range-source.js";
export { importToOpfs, removeFromOpfs, storageInfo, progressStep, MAX_PROGRESS_STEP } from "./opfs-import.js";
export type { ImportOptions } from "./opfs-import.js";
export { FlashWorkerClient } from "./client.js";
export type { ClientChatOptions, ClientGenerateOptions, ClientImportOptions, ClientLoadOptions, CreateClientOptions, ModelSource } from "./client.js";
export { hostFlashWorker, combineShardStats } from "./worker/host.js";
export type { HostOptions, WorkerScope } from "./worker/host.js";
export { WebShardHost } from "./worker/shard-host.js";
export { chooseWorkers, MIN_SHARD_BYTES, ONE_INSTANCE_BYTES } from "./choose-workers.js";
export type { TabCapabilities, WorkerChoice } from "./choose-workers.js";
export { QuotaError, serializeError, deserializeError } from "./errors.js";
export { ProgressMeter, formatDuration } from "./progress-meter.js";
export type { ProgressReading } from "./progress-meter.js";
export { diagnoseNetworkFailure, describeNetworkFailure } from "./network-error.js";
export type { NetworkFailure } from "./network-error.js";
export type * from "./protocol.js";
