// Writes GGUF files from the shipped llama2.c model with the SDK's GgufWriter, in llama.cpp's layout
// (NOTES.md, "The peer"): `llama.*` keys, SentencePiece tokenizer keys with ▁ pieces and BYTE-typed
// <0xXX> tokens, tensor dims fastest-first. llama2.c's q/k rows are already in the interleaved order
// llama.cpp's LLM_ARCH_LLAMA expects, so they are written as they are.
import { GgmlType, GgufWriter, MemorySink, dequantize, kv, quantize, readLlama2cCheckpoint, type GgufKv, type GgufTensorDecl } from "@flashllm/sdk/internal";
import { STORIES_BIN, STORIES_TOK, readBytes } from "./helpers.js";

/** Reads a llama2.c tokenizer.bin into pieces and scores. */
export function readLlama2cVocab(bytes: Uint8Array, vocab: number): { pieces: string[]; scores: number[] } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  const pieces: string[] = [];
  const scores: number[] = [];
  let p = 4;
  for (let i = 0; i < vocab; i++) {
    scores.push(dv.getFloat32(p, true));
    const len = dv.getInt32(p + 4, true);
    pieces.push(dec.decode(bytes.subarray(p + 8, p + 8 + len)));
    p += 8 + len;
  }
  return { pieces, scores };
}

/** SentencePiece tokenizer keys for llama.cpp from a llama2.c vocabulary (ids 0/1/2 = unk/bos/eos, 3…258 bytes). */
export function sentencePieceKeys(pieces: string[], scores: number[]): GgufKv[] {
  const tokens = pieces.map((p, id) => (id === 0 ? "<unk>" : id === 1 ? "<s>" : id === 2 ? "</s>" : /^<0x[0-9A-F]{2}>$/.test(p) ? p : p.replaceAll(" ", "\u2581")));
  const types = pieces.map((p, id) => (id === 0 ? 2 : id <= 2 ? 3 : /^<0x[0-9A-F]{2}>$/.test(p) ? 6 : 1));
  return [
    kv.str("tokenizer.ggml.model", "llama"),
    kv.strs("tokenizer.ggml.tokens", tokens),
    kv.f32s("tokenizer.ggml.scores", scores),
    kv.i32s("tokenizer.ggml.token_type", types),
    kv.u32("tokenizer.ggml.bos_token_id", 1),
    kv.u32("tokenizer.ggml.eos_token_id", 2),
    kv.u32("tokenizer.ggml.unknown_token_id", 0),
  ];
}

/** Which GGML type each tensor gets: norms stay F32; matrices whose rows are whole blocks take `type`, others F16 (as llama.cpp's quantizer falls back). */
function pick(type: number, dims: number[]): number {
  if (dims.length === 1 || type === GgmlType.F32 || type === GgmlType.F16) return dims.length === 1 ? GgmlType.F32 : type;
  return dims[0] % 32 === 0 ? type : GgmlType.F16;
}

/**
 * A GGUF of the shipped stories260K in `type` (F32, F16, Q8_0 or Q4_0 for the matrices).
 * `downAsBundles`: write `ffn_down` as F32 holding the values flashllm's bundles store for it (each
 * neuron's down column quantized along dim as `type`, then decoded), so both engines multiply by the
 * same down weights: a bundle's down column is re-quantized along dim, which GGUF's row blocks (along
 * the FFN width) cannot match.
 */
export async function storiesGguf(type: number = GgmlType.F32, extra: GgufKv[] = [], downAsBundles = false): Promise<Uint8Array> {
  const { config: c, tensors } = readLlama2cCheckpoint(readBytes(STORIES_BIN));
  if (downAsBundles) {
    for (let l = 0; l < c.nLayers; l++) {
      const w2 = tensors.get(`layers.${l}.w2`)!; // [dim][hidden]
      const col = new Float32Array(c.dim);
      for (let i = 0; i < c.hiddenDim; i++) {
        for (let d = 0; d < c.dim; d++) col[d] = w2[d * c.hiddenDim + i];
        dequantize(type, quantize(type, col), c.dim, col);
        for (let d = 0; d < c.dim; d++) w2[d * c.hiddenDim + i] = col[d];
      }
    }
  }
  const { pieces, scores } = readLlama2cVocab(readBytes(STORIES_TOK), c.vocabSize);
  const kvDim = (c.dim * c.nKvHeads) / c.nHeads;
  const meta: GgufKv[] = [
    kv.str("general.architecture", "llama"),
    kv.str("general.name", "stories260K"),
    kv.u32("llama.context_length", c.seqLen),
    kv.u32("llama.embedding_length", c.dim),
    kv.u32("llama.block_count", c.nLayers),
    kv.u32("llama.feed_forward_length", c.hiddenDim),
    kv.u32("llama.rope.dimension_count", c.dim / c.nHeads),
    kv.u32("llama.attention.head_count", c.nHeads),
    kv.u32("llama.attention.head_count_kv", c.nKvHeads),
    kv.f32("llama.attention.layer_norm_rms_epsilon", 1e-5),
    kv.f32("llama.rope.freq_base", 10000),
    ...sentencePieceKeys(pieces, scores),
    ...extra,
  ];
  const list: [string, string, number[]][] = [["token_embd.weight", "tok_embeddings", [c.dim, c.vocabSize]]];
  for (let l = 0; l < c.nLayers; l++) {
    const L = `layers.${l}.`;
    list.push(
      [`blk.${l}.attn_norm.weight`, L + "attn_norm", [c.dim]],
      [`blk.${l}.attn_q.weight`, L + "wq", [c.dim, c.dim]],
      [`blk.${l}.attn_k.weight`, L + "wk", [c.dim, kvDim]],
      [`blk.${l}.attn_v.weight`, L + "wv", [c.dim, kvDim]],
      [`blk.${l}.attn_output.weight`, L + "wo", [c.dim, c.dim]],
      [`blk.${l}.ffn_norm.weight`, L + "ffn_norm", [c.dim]],
      [`blk.${l}.ffn_gate.weight`, L + "w1", [c.dim, c.hiddenDim]],
      [`blk.${l}.ffn_down.weight`, L + "w2", [c.hiddenDim, c.dim]],
      [`blk.${l}.ffn_up.weight`, L + "w3", [c.dim, c.hiddenDim]],
    );
  }
  list.push(["output_norm.weight", "norm", [c.dim]]);
  const decl: GgufTensorDecl[] = list.map(([name, , dims]) => ({ name, dims, type: downAsBundles && name.endsWith("ffn_down.weight") ? GgmlType.F32 : pick(type, dims) }));
  const sink = new MemorySink();
  const w = new GgufWriter(sink, meta, decl);
  for (const [name, src] of list) await w.write(name, tensors.get(src)!);
  await w.finish();
  return sink.bytes();
}
