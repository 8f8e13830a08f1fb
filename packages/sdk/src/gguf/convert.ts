import type { ConvertOptions } from "../convert/from-llama2c.js";
import { convertTensors } from "../convert/from-llama2c.js";
import type { FlmSink } from "../format/sink.js";
import type { Manifest } from "../format/types.js";
import type { FlashSource } from "../source.js";
import { ggmlTypeName } from "./constants.js";
import type { GgufModelOptions } from "./model.js";
import { ggufModel } from "./model.js";
import { openGguf } from "./reader.js";

/** Options of {@link convertGguf}. */
export interface ConvertGgufOptions extends Omit<ConvertOptions, "activation">, GgufModelOptions {}

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
