import { BUNDLE_HEADER_BYTES } from "../format/constants.js";
import type { FlmDeclaration, TensorDeclaration } from "../format/layout.js";
import type { FlmSink } from "../format/sink.js";
import type { Manifest } from "../format/types.js";
import { FlmWriter } from "../format/writer.js";
import { kvDim } from "../model/config.js";
import { headMajorWo } from "../model/head-major.js";
import { XorShift32 } from "./random.js";
import type { SynthShape } from "./shapes.js";

/** Options of {@link synthesizeFlm}. */
export interface SynthOptions {
  /** PRNG seed. Default 1. */
  seed?: number;
  /** `wo` head-major (default: container version 2) or row-major (`"rows"`: version 1, as files before it). The weights are the same. */
  woLayout?: "heads" | "rows";
  /** Bundle stride alignment (16 = dense; 4096 = every bundle O_DIRECT-aligned, with padding). Default 16. */
  bundleAlignment?: number;
  /** Active neurons per token the down scales are sized for (keeps activations near unit size). Default 10%. */
  activeFraction?: number;
  /** Called after every chunk written: bytes done of the file's total. */
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** Standard deviation of a uniform int8 value in [-128, 127]: √((256² − 1)/12). */
const Q_STD = Math.sqrt((256 * 256 - 1) / 12);

/**
 * Writes a `.flm` file of `shape` with random q8 weights (the format stores f32 or q8; q8 is the
 * realistic type for a 7B model on a laptop). Streams: one resident tensor or one 4 MiB chunk of
 * bundles in memory at a time, never the model. Scales are chosen so activations stay near unit size
 * (no NaN or denormal slow paths). Every shape gets a synthetic llama2.c tokenizer (`<0xXX>` byte
 * pieces, then placeholder pieces) so it opens like any other model; OPT shapes get the LayerNorm
 * biases their forward pass needs (zeros).
 */
export async function synthesizeFlm(sink: FlmSink, shape: SynthShape, opts: SynthOptions = {}): Promise<Manifest> {
  const c = shape.config;
  const { dim, hiddenDim, nLayers, vocabSize } = c;
  const rng = new XorShift32(opts.seed ?? 1);
  const kv = kvDim(c);
  const decl: TensorDeclaration[] = [{ name: "tok_embeddings", shape: [vocabSize, dim] }];
  if (!c.sharedClassifier) decl.push({ name: "output", shape: [vocabSize, dim] });
  if (c.maxPositions !== undefined) decl.push({ name: "pos_embeddings", shape: [c.maxPositions, dim] });
  decl.push({ name: "norm", shape: [dim] });
  if (c.norm === "layernorm") decl.push({ name: "norm_bias", shape: [dim] });
  for (let l = 0; l < nLayers; l++) {
    const L = `layers.${l}.`;
    decl.push({ name: L + "attn_norm", shape: [dim] }, { name: L + "wq", shape: [dim, dim] }, { name: L + "wk", shape: [kv, dim] }, { name: L + "wv", shape: [kv, dim] }, { name: L + "wo", shape: [dim, dim] }, { name: L + "ffn_norm", shape: [dim] });
    if (c.norm === "layernorm") decl.push({ name: L + "attn_norm_bias", shape: [dim] }, { name: L + "ffn_norm_bias", shape: [dim] });
  }
  // Every shape gets a tokenizer, so that openFlashModel (which generate needs) opens it like any model.
  const tokenizer = syntheticTokenizer(vocabSize);
  const declaration: FlmDeclaration = {
    architecture: shape.architecture,
    config: c,
    dtype: { resident: "q8", ffn: "q8" },
    tensors: decl,
    tokenizer: { kind: "llama2c", byteLength: tokenizer.byteLength },
    bundleAlignment: opts.bundleAlignment,
    provenance: { converter: "flashllm synth", shape: shape.name, weights: `random q8 (xorshift32, seed ${opts.seed ?? 1})`, note: "random weights: measures I/O, memory management and compute, not quality" },
  };
  const writer = new FlmWriter(sink, opts.woLayout === "rows" ? declaration : headMajorWo(declaration));
  const total = writer.plan.fileSize;
  let done = 0;
  const progress = (n: number) => {
    done += n;
    opts.onProgress?.(Math.min(done, total), total);
  };

  // Resident tensors: random int8 rows with scales for unit-variance outputs; norms are ones.
  for (const t of writer.plan.manifest.tensors) {
    const rows = t.shape.length > 1 ? t.shape[0] : 1;
    const cols = t.shape[t.shape.length - 1];
    if (t.dtype === "f32") {
      await writer.writeTensor(t.name, new Float32Array(rows * cols).fill(t.name.endsWith("bias") ? 0 : 1));
    } else {
      const q = new Int8Array(rows * cols);
      rng.fill(new Uint8Array(q.buffer));
      const scale = t.name === "tok_embeddings" || t.name === "pos_embeddings" ? 1 / Q_STD : 1 / (Q_STD * Math.sqrt(cols));
      await writer.writeTensor(t.name, { q, scales: new Float32Array(rows).fill(scale) });
    }
    progress(t.length);
  }
  await writer.writeTokenizer(tokenizer);

  // FFN bundles: [scale_gate][scale_up][scale_down][bias_up] then the int8 rows, packed here directly.
  const rowsPerBundle = c.gated ? 3 : 2;
  const bundleBytes = BUNDLE_HEADER_BYTES + rowsPerBundle * dim;
  const bundle = new Uint8Array(bundleBytes);
  const header = new DataView(bundle.buffer, 0, BUNDLE_HEADER_BYTES);
  const rows = bundle.subarray(BUNDLE_HEADER_BYTES);
  const inScale = 1 / (Q_STD * Math.sqrt(dim));
  const downScale = 1 / (Q_STD * Math.sqrt(Math.max(1, (opts.activeFraction ?? 0.1) * hiddenDim)));
  header.setFloat32(0, c.gated ? inScale : 0, true);
  header.setFloat32(4, inScale, true);
  header.setFloat32(8, downScale, true);
  header.setFloat32(12, 0, true);
  const stride = writer.plan.bundle.bundleStride;
  for (let l = 0; l < nLayers; l++) {
    await writer.writeLayer(l, (i) => {
      rng.fill(rows);
      if ((i + 1) % 256 === 0 || i + 1 === hiddenDim) progress(((i % 256) + 1) * stride);
      return bundle;
    });
  }
  const m = await writer.finish();
  opts.onProgress?.(total, total);
  return m;
}

/**
 * A llama2.c tokenizer file of `vocabSize` pieces: `<unk>`, BOS, EOS, the 256 byte pieces `<0xXX>`,
 * then placeholders `" t{id}"`. Enough for a random-weight model to open, encode and decode.
 */
export function syntheticTokenizer(vocabSize: number): Uint8Array {
  const enc = new TextEncoder();
  const pieces: Uint8Array[] = [];
  for (let id = 0; id < vocabSize; id++) {
    let p: string;
    if (id === 0) p = "<unk>";
    else if (id === 1) p = "\n<s>\n";
    else if (id === 2) p = "\n</s>\n";
    else if (id < 259) p = `<0x${(id - 3).toString(16).toUpperCase().padStart(2, "0")}>`;
    else p = ` t${id}`;
    pieces.push(enc.encode(p));
  }
  const maxLen = pieces.reduce((m, p) => Math.max(m, p.byteLength), 1);
  const out = new Uint8Array(4 + pieces.reduce((s, p) => s + 8 + p.byteLength, 0));
  const dv = new DataView(out.buffer);
  dv.setInt32(0, maxLen, true);
  let at = 4;
  pieces.forEach((p) => {
    dv.setFloat32(at, 0, true);
    dv.setInt32(at + 4, p.byteLength, true);
    out.set(p, at + 8);
    at += 8 + p.byteLength;
  });
  return out;
}
