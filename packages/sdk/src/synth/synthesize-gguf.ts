import { FlashError } from "../errors.js";
import type { FlmSink } from "../format/sink.js";
import { GgmlType } from "../gguf/constants.js";
import { f32ToF16 } from "../gguf/half.js";
import type { GgufKv } from "../gguf/reader.js";
import { GgufWriter, kv } from "../gguf/writer.js";
import type { GgufTensorDecl } from "../gguf/writer.js";
import { kvDim } from "../model/config.js";
import { XorShift32 } from "./random.js";
import type { SynthShape } from "./shapes.js";

/** Standard deviation of a uniform int8 value in [-128, 127]. */
const Q_STD = Math.sqrt((256 * 256 - 1) / 12);
const Q8_0_BLOCK = 34;

/**
 * Writes a GGUF file (Q8_0 matrices, F32 norms) of a llama-family `shape` with random weights: the
 * llama.cpp side of `flashllm bench-peer`, the same shape as the `.flm` flashllm runs. Weight scales
 * keep activations near unit size (as `synthesizeFlm` does), so neither engine meets NaN or
 * denormal slow paths. Streams one 4 MiB piece at a time; a 7B file (7.2 GB) needs no more memory.
 * The tokenizer is a SentencePiece-style vocabulary of placeholders (`<unk>`, `<s>`, `</s>`, 256
 * byte tokens, then `▁t{id}`), enough for llama.cpp to load the file.
 */
export async function synthesizeGguf(sink: FlmSink, shape: SynthShape, opts: { seed?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<number> {
  const c = shape.config;
  if (shape.architecture !== "llama" || !c.gated) throw new FlashError("UNSUPPORTED", `synthesizeGguf writes llama-family shapes; ${shape.name} is ${shape.architecture}`);
  if (c.dim % 32 !== 0 || c.hiddenDim % 32 !== 0) throw new FlashError("BAD_ARGUMENT", `Q8_0 needs dims divisible by 32 (dim ${c.dim}, FFN ${c.hiddenDim})`);
  const { dim, hiddenDim: hidden, nLayers, vocabSize } = c;
  const kvd = kvDim(c);
  const hs = dim / c.nHeads;
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < vocabSize; id++) {
    if (id === 0) tokens.push("<unk>"), types.push(2);
    else if (id === 1) tokens.push("<s>"), types.push(3);
    else if (id === 2) tokens.push("</s>"), types.push(3);
    else if (id < 259) tokens.push(`<0x${(id - 3).toString(16).toUpperCase().padStart(2, "0")}>`), types.push(6);
    else tokens.push(`\u2581t${id}`), types.push(1);
  }
  const meta: GgufKv[] = [
    kv.str("general.architecture", "llama"),
    kv.str("general.name", `flashllm synth ${shape.name} (random Q8_0 weights)`),
    kv.u32("llama.context_length", c.seqLen),
    kv.u32("llama.embedding_length", dim),
    kv.u32("llama.block_count", nLayers),
    kv.u32("llama.feed_forward_length", hidden),
    kv.u32("llama.rope.dimension_count", hs),
    kv.u32("llama.attention.head_count", c.nHeads),
    kv.u32("llama.attention.head_count_kv", c.nKvHeads),
    kv.f32("llama.attention.layer_norm_rms_epsilon", c.normEps),
    kv.f32("llama.rope.freq_base", c.ropeTheta),
    kv.str("tokenizer.ggml.model", "llama"),
    kv.strs("tokenizer.ggml.tokens", tokens),
    kv.f32s("tokenizer.ggml.scores", tokens.map((_, i) => -i)),
    kv.i32s("tokenizer.ggml.token_type", types),
    kv.u32("tokenizer.ggml.bos_token_id", 1),
    kv.u32("tokenizer.ggml.eos_token_id", 2),
  ];
  // [name, rows, cols, scale of one weight] in llama.cpp's tensor order; dims are written fastest-first.
  const mats: [string, number, number, number][] = [];
  const decl: GgufTensorDecl[] = [];
  const q8 = (name: string, rows: number, cols: number, scale: number) => {
    decl.push({ name, dims: [cols, rows], type: GgmlType.Q8_0 });
    mats.push([name, rows, cols, scale]);
  };
  const norm = (name: string) => {
    decl.push({ name, dims: [dim], type: GgmlType.F32 });
    mats.push([name, 1, dim, 0]);
  };
  const w = (cols: number) => 1 / (Q_STD * Math.sqrt(cols));
  q8("token_embd.weight", vocabSize, dim, 1 / Q_STD);
  for (let l = 0; l < nLayers; l++) {
    const B = `blk.${l}.`;
    norm(B + "attn_norm.weight");
    q8(B + "attn_q.weight", dim, dim, w(dim));
    q8(B + "attn_k.weight", kvd, dim, w(dim));
    q8(B + "attn_v.weight", kvd, dim, w(dim));
    q8(B + "attn_output.weight", dim, dim, w(dim));
    norm(B + "ffn_norm.weight");
    q8(B + "ffn_gate.weight", hidden, dim, w(dim));
    q8(B + "ffn_up.weight", hidden, dim, w(dim));
    q8(B + "ffn_down.weight", dim, hidden, w(hidden));
  }
  norm("output_norm.weight");
  q8("output.weight", vocabSize, dim, w(dim));

  const writer = new GgufWriter(sink, meta, decl);
  const rng = new XorShift32(opts.seed ?? 1);
  const total = writer.fileSize;
  let done = 0;
  const chunkBlocks = Math.floor((4 << 20) / Q8_0_BLOCK);
  const chunk = new Uint8Array(chunkBlocks * Q8_0_BLOCK);
  for (const [name, rows, cols, scale] of mats) {
    if (scale === 0) {
      await writer.write(name, new Float32Array(cols).fill(1));
      continue;
    }
    const d = f32ToF16(scale);
    let blocks = (rows * cols) / 32;
    while (blocks > 0) {
      const n = Math.min(blocks, chunkBlocks);
      const piece = chunk.subarray(0, n * Q8_0_BLOCK);
      rng.fill(piece);
      for (let b = 0; b < n; b++) {
        piece[b * Q8_0_BLOCK] = d & 0xff;
        piece[b * Q8_0_BLOCK + 1] = d >> 8;
      }
      await writer.write(name, piece);
      blocks -= n;
      done += piece.byteLength;
      opts.onProgress?.(Math.min(done, total), total);
    }
  }
  await writer.finish();
  opts.onProgress?.(total, total);
  return total;
}
