import { FormatError } from "../errors.js";
import type { ModelConfig } from "./config.js";
import type { FlashSource } from "../source.js";
import type { TensorSource } from "../convert/from-llama2c.js";
import { HOST_LITTLE_ENDIAN } from "../format/bytes.js";

/** A llama2.c checkpoint read into memory: its config and its tensors by name (views, no copies). */
export interface Llama2cCheckpoint {
  config: ModelConfig;
  /**
   * Tensors, row-major `[out][in]`: `tok_embeddings [vocab][dim]`, `norm [dim]`, `output [vocab][dim]`
   * (the embedding itself when shared), and per layer `layers.{l}.attn_norm [dim]`, `wq [dim][dim]`,
   * `wk [kv][dim]`, `wv [kv][dim]`, `wo [dim][dim]`, `ffn_norm [dim]`, `w1` (gate) `[hidden][dim]`,
   * `w2` (down) `[dim][hidden]`, `w3` (up) `[hidden][dim]`.
   */
  tensors: Map<string, Float32Array>;
}

/** Options the llama2.c format cannot express. */
export interface Llama2cOptions {
  /** FFN gate activation. The format does not record it: relufied checkpoints need `"relu"`. Default `"silu"`. */
  activation?: "silu" | "relu";
}

const HEADER_BYTES = 28;

/** A checked llama2.c header: the config and the f32 arrays that follow it, in file order. */
export interface Llama2cLayout {
  config: ModelConfig;
  /** [name, f32 count] in file order (the stacked per-layer arrays, e.g. "wq" holds every layer's wq). */
  arrays: [string, number][];
  /** Exact size of the file the header describes. */
  fileBytes: number;
}

/**
 * Reads and checks the 28-byte header (7 int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; negative vocab_size = unshared classifier) against a file of `fileBytes`.
 * The size must match the header exactly; a mismatch names both sizes.
 */
export function readLlama2cHeader(head: Uint8Array, fileBytes: number, opts: Llama2cOptions = {}): Llama2cLayout {
  if (head.byteLength < HEADER_BYTES || fileBytes < HEADER_BYTES) {
    throw new FormatError("TRUNCATED", `llama2.c checkpoint: ${fileBytes} bytes, shorter than the ${HEADER_BYTES}-byte header`, {
      expectedBytes: HEADER_BYTES,
      actualBytes: fileBytes,
    });
  }
  const dv = new DataView(head.buffer, head.byteOffset, HEADER_BYTES);
  const h = Array.from({ length: 7 }, (_, i) => dv.getInt32(i * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = h;
  const vocabSize = Math.abs(rawVocab);
  const bad = (what: string) => {
    throw new FormatError("BAD_HEADER", `llama2.c checkpoint: ${what} (header: dim=${dim} hidden_dim=${hiddenDim} n_layers=${nLayers} n_heads=${nHeads} n_kv_heads=${nKvHeads} vocab_size=${rawVocab} seq_len=${seqLen})`, {
      header: h,
    });
  };
  const inRange = (v: number, max: number) => Number.isInteger(v) && v > 0 && v <= max;
  if (!inRange(dim, 1 << 16) || !inRange(hiddenDim, 1 << 20) || !inRange(nLayers, 1024) || !inRange(nHeads, 1024) ||
      !inRange(nKvHeads, 1024) || !inRange(vocabSize, 1 << 22) || !inRange(seqLen, 1 << 20)) {
    bad("a dimension is zero, negative or absurdly large");
  }
  if (dim % nHeads !== 0) bad(`dim ${dim} is not a multiple of n_heads ${nHeads}`);
  if (nHeads % nKvHeads !== 0) bad(`n_heads ${nHeads} is not a multiple of n_kv_heads ${nKvHeads}`);
  if ((dim / nHeads) % 2 !== 0) bad(`head size ${dim / nHeads} is odd; RoPE rotates pairs`);
  const shared = rawVocab > 0;
  const headSize = dim / nHeads;
  const kv = (dim * nKvHeads) / nHeads;

  // Shapes in file order. freq_cis_real/imag are stored but unused (RoPE is computed), kept for sizing.
  const L = nLayers;
  const layout: [string, number][] = [
    ["tok_embeddings", vocabSize * dim],
    ["rms_att", L * dim],
    ["wq", L * dim * dim],
    ["wk", L * kv * dim],
    ["wv", L * kv * dim],
    ["wo", L * dim * dim],
    ["rms_ffn", L * dim],
    ["w1", L * hiddenDim * dim],
    ["w2", L * dim * hiddenDim],
    ["w3", L * hiddenDim * dim],
    ["norm", dim],
    ["freq_cis_real", seqLen * (headSize / 2)],
    ["freq_cis_imag", seqLen * (headSize / 2)],
  ];
  if (!shared) layout.push(["output", vocabSize * dim]);
  const floats = layout.reduce((s, [, n]) => s + n, 0);
  const expected = HEADER_BYTES + 4 * floats;
  if (fileBytes !== expected) {
    const code = fileBytes < expected ? "TRUNCATED" : "SIZE_MISMATCH";
    throw new FormatError(code, `llama2.c checkpoint: the header describes ${expected} bytes but the file has ${fileBytes}`, {
      expectedBytes: expected,
      actualBytes: fileBytes,
    });
  }
  const config: ModelConfig = {
    dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "interleaved",
    activation: opts.activation ?? "silu",
    gated: true,
    sharedClassifier: shared,
    norm: "rmsnorm",
  };
  return { config, arrays: layout, fileBytes: expected };
}

/** Where each canonical tensor lives: [array name, f32 offset inside it, f32 count]. */
export function llama2cTensorMap(layout: Llama2cLayout): Map<string, [string, number, number]> {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads } = layout.config;
  const kv = (dim * nKvHeads) / nHeads;
  const map = new Map<string, [string, number, number]>();
  const count = new Map(layout.arrays);
  map.set("tok_embeddings", ["tok_embeddings", 0, count.get("tok_embeddings")!]);
  map.set("norm", ["norm", 0, dim]);
  map.set("output", layout.config.sharedClassifier ? map.get("tok_embeddings")! : ["output", 0, count.get("output")!]);
  const perLayer: [string, string, number][] = [
    ["attn_norm", "rms_att", dim],
    ["wq", "wq", dim * dim],
    ["wk", "wk", kv * dim],
    ["wv", "wv", kv * dim],
    ["wo", "wo", dim * dim],
    ["ffn_norm", "rms_ffn", dim],
    ["w1", "w1", hiddenDim * dim],
    ["w2", "w2", dim * hiddenDim],
    ["w3", "w3", hiddenDim * dim],
  ];
  for (let l = 0; l < nLayers; l++) for (const [name, src, n] of perLayer) map.set(`layers.${l}.${name}`, [src, l * n, n]);
  return map;
}

/**
 * Reads karpathy's llama2.c checkpoint format from bytes in memory (see {@link readLlama2cHeader});
 * for files of any size, {@link llama2cTensorSource} reads tensor by tensor instead.
 */
export function readLlama2cCheckpoint(bytes: Uint8Array, opts: Llama2cOptions = {}): Llama2cCheckpoint {
  const layout = readLlama2cHeader(bytes.subarray(0, HEADER_BYTES), bytes.byteLength, opts);
  const { config } = layout;
  const floats = (layout.fileBytes - HEADER_BYTES) / 4;
  // Float32Array views need 4-byte alignment; copy once if the caller's buffer is not aligned.
  const body = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const all = new Float32Array(body.buffer, body.byteOffset + HEADER_BYTES, floats);
  const start = new Map<string, number>();
  let off = 0;
  for (const [name, n] of layout.arrays) {
    start.set(name, off);
    off += n;
  }
  const tensors = new Map<string, Float32Array>();
  for (const [name, [arr, at, n]] of llama2cTensorMap(layout)) tensors.set(name, all.subarray(start.get(arr)! + at, start.get(arr)! + at + n));
  return { config, tensors };
}

/**
 * A llama2.c checkpoint read tensor by tensor from any {@link FlashSource} (so files over 2 GiB, which
 * cannot be one ArrayBuffer, convert with memory for one layer).
 */
export async function llama2cTensorSource(source: FlashSource, opts: Llama2cOptions = {}): Promise<TensorSource> {
  const head = new Uint8Array(Math.min(HEADER_BYTES, source.byteLength));
  if (head.byteLength > 0) await source.read([{ offset: 0, length: head.byteLength, target: head }]);
  const layout = readLlama2cHeader(head, source.byteLength, opts);
  const start = new Map<string, number>();
  let off = HEADER_BYTES;
  for (const [name, n] of layout.arrays) {
    start.set(name, off);
    off += 4 * n;
  }
  const map = llama2cTensorMap(layout);
  return {
    config: layout.config,
    getTensor: async (name) => {
      const e = map.get(name);
      if (!e) throw new FormatError("BAD_HEADER", `llama2.c checkpoint has no tensor "${name}"`);
      const out = new Float32Array(e[2]);
      await source.read([{ offset: start.get(e[0])! + 4 * e[1], length: 4 * e[2], target: new Uint8Array(out.buffer) }]);
      if (!HOST_LITTLE_ENDIAN) {
        const v = new DataView(out.buffer);
        for (let i = 0; i < out.length; i++) out[i] = v.getFloat32(i * 4, true);
      }
      return out;
    },
  };
}
