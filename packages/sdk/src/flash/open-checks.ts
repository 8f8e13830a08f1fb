import { FlashError } from "../errors.js";
import type { FlmFile } from "../format/reader.js";
import type { Range } from "../shard/plan.js";
import { checkModelTensors } from "./check-model.js";
import type { FfnStorageLayout } from "./flash-ffn.js";

/**
 * What every way of opening a model checks first (one instance or shards): a tokenizer, a context
 * length in range, tensors that match the config, a valid window. Returns the context length to use.
 */
export function checkOpen(file: FlmFile, opts: { contextLength?: number; window?: number }): number {
  const m = file.manifest;
  const c = m.config;
  if (m.tokenizer.kind === "none") throw new FlashError("UNSUPPORTED", "this file stores no tokenizer: generate needs one");
  const contextLength = Math.min(opts.contextLength ?? c.seqLen, c.seqLen);
  if (!(Number.isSafeInteger(contextLength) && contextLength >= 1)) throw new FlashError("BAD_ARGUMENT", `contextLength must be an integer ≥ 1, got ${opts.contextLength}`);
  checkModelTensors(m, contextLength);
  if (opts.window !== undefined && !(Number.isSafeInteger(opts.window) && opts.window >= 0)) {
    throw new FlashError("BAD_ARGUMENT", `window must be an integer ≥ 0, got ${opts.window}`);
  }
  return contextLength;
}

/**
 * The FFN storage layout of a file, over all neurons or a range of them (a shard's): bundles of a
 * range are contiguous, so a range is the same layout with fewer neurons and shifted layer offsets.
 */
export function ffnLayout(file: FlmFile, neurons?: Range): FfnStorageLayout {
  const m = file.manifest;
  const c = m.config;
  const first = neurons?.first ?? 0;
  return {
    dim: c.dim,
    neurons: neurons?.count ?? c.hiddenDim,
    nLayers: c.nLayers,
    bundleBytes: m.ffn.bundleBytes,
    bundleStride: m.ffn.bundleStride,
    dtype: m.ffn.dtype,
    gated: m.ffn.gated,
    activation: c.activation,
    activationThreshold: c.activationThreshold,
    layerOffsets: Array.from({ length: c.nLayers }, (_, l) => file.ffnLayerOffset(l) + first * m.ffn.bundleStride),
  };
}
