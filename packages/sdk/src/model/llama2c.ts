import { FormatError } from "../errors.js";
import type { ModelConfig } from "./config.js";

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

/**
 * Reads karpathy's llama2.c checkpoint format: 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; negative vocab_size = unshared classifier), then f32 tensors.
 * The size must match the header exactly; a mismatch names both sizes.
 */
export function readLlama2cCheckpoint(bytes: Uint8Array, opts: Llama2cOptions = {}): Llama2cCheckpoint {
  if (bytes.byteLength < HEADER_BYTES) {
    throw new FormatError("TRUNCATED", `llama2.c checkpoint: ${bytes.byteLength} bytes, shorter than the ${HEADER_BYTES}-byte header`, {
      expectedBytes: HEADER_BYTES,
      actualBytes: bytes.byteLength,
    });
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
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
  if (bytes.byteLength !== expected) {
    const code = bytes.byteLength < expected ? "TRUNCATED" : "SIZE_MISMATCH";
    throw new FormatError(code, `llama2.c checkpoint: the header describes ${expected} bytes but the file has ${bytes.byteLength}`, {
      expectedBytes: expected,
      actualBytes: bytes.byteLength,
    });
  }
  // Float32Array views need 4-byte alignment; copy once if the caller's buffer is not aligned.
  const body = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const all = new Float32Array(body.buffer, body.byteOffset + HEADER_BYTES, floats);
  const raw = new Map<string, Float32Array>();
  let off = 0;
  for (const [name, n] of layout) {
    raw.set(name, all.subarray(off, off + n));
    off += n;
  }
  const tensors = new Map<string, Float32Array>();
  tensors.set("tok_embeddings", raw.get("tok_embeddings")!);
  tensors.set("norm", raw.get("norm")!);
  tensors.set("output", shared ? raw.get("tok_embeddings")! : raw.get("output")!);
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
  for (let l = 0; l < L; l++) {
    for (const [name, src, n] of perLayer) tensors.set(`layers.${l}.${name}`, raw.get(src)!.subarray(l * n, (l + 1) * n));
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
  return { config, tensors };
}
