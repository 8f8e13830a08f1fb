import type { ConvertOptions } from "../convert/from-llama2c.js";
import { convertTensors } from "../convert/from-llama2c.js";
import type { FlmSink } from "../format/sink.js";
import type { Manifest } from "../format/types.js";
import type { FlashSource } from "../source.js";
import { GgmlType, ggmlTypeName } from "./constants.js";
import type { Dtype } from "../format/types.js";
import type { GgufModel, GgufModelOptions } from "./model.js";
import { ggufModel } from "./model.js";
import { openGguf } from "./reader.js";

/** Options of {@link convertGguf}. */
export interface ConvertGgufOptions extends Omit<ConvertOptions, "activation">, GgufModelOptions {}

/**
 * The container type closest to the file's own weights ("keep", read from its attention and FFN
 * matrices): F32/BF16 → f32, F16 → f16, Q8_0 → q8_0, Q4_0 → q4_0 (both copied verbatim where the
 * layout allows); Q6_K → q8_0 and Q4_1/Q4_K → q4_0 (re-quantized). Block types need a width that is a
 * multiple of 32; otherwise f16 (q8 for quantized files).
 */
export function keepDtype(model: GgufModel): Dtype {
  const t = model.names.get("layers.0.w1")?.type ?? GgmlType.F32;
  const quantized = t !== GgmlType.F32 && t !== GgmlType.F16 && t !== GgmlType.BF16;
  if (quantized && model.config.dim % 32 !== 0) return "q8";
  switch (t) {
    case GgmlType.F32: case GgmlType.BF16: return "f32";
    case GgmlType.F16: return "f16";
    case GgmlType.Q8_0: case GgmlType.Q6_K: return "q8_0";
    case GgmlType.Q4_0: case GgmlType.Q4_1: case GgmlType.Q4_K: return "q4_0";
    default: return "q8";
  }
}

/**
 * Converts a GGUF file, streamed from `source`, into a `.flm` container: the header is parsed, then
 * tensors are read and dequantized one at a time (per layer: the FFN's three matrices), so memory
 * holds one layer, never the file. The chat template and the tokenizer come from the metadata.
 */
export async function convertGguf(source: FlashSource, sink: FlmSink, opts: ConvertGgufOptions = {}): Promise<Manifest> {
  const file = await openGguf(source);
  const model = ggufModel(file, opts);
  const types = [...new Set(file.tensors.map((t) => ggmlTypeName(t.type)))];
  return convertTensors(model.tensors, model.tokenizer.file, sink, {
    ...opts,
    dtype: opts.dtype ?? keepDtype(model),
    ...(model.chatTemplate !== undefined && opts.chatTemplate === undefined ? { chatTemplate: model.chatTemplate } : {}),
    provenance: {
      sourceFormat: "gguf",
      ggufVersion: file.version,
      ggufArchitecture: model.architecture,
      ggufTypes: types,
      ...(model.tokenizer.notes.length ? { tokenizerNotes: model.tokenizer.notes } : {}),
      ...opts.provenance,
    },
  });
}
