// Shared fixtures for the format tests: a small random model, a sink that checks every byte is
// written exactly once, and tools to corrupt a file's header or manifest.
import { expect } from "vitest";
import { FlashError } from "../../src/errors.js";
import { FlmWriter, HEADER_BYTES, MemorySink } from "../../src/format/index.js";
import type { Dtype, FlmDeclaration, NeuronWeights, TensorDeclaration } from "../../src/format/index.js";
import { mulberry32 } from "../../src/testing/index.js";

/** mulberry32: small deterministic PRNG so failures reproduce. */
export const rng: (seed: number) => () => number = mulberry32;

export function randomF32(rand: () => number, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * scale;
  return out;
}

export interface Variant {
  gated: boolean;
  dtype: Dtype;
  alignment?: number;
  tokenizer?: boolean;
}

export interface TestModel {
  decl: FlmDeclaration;
  tensors: Map<string, Float32Array>;
  /** neurons[layer][i] */
  neurons: NeuronWeights[][];
  tokenizer: Uint8Array;
}

export const DIM = 16;
export const HIDDEN = 40;
export const LAYERS = 2;

/** A llama-like (gated) or OPT-like (ungated, biased) model of dim 16, hidden 40, 2 layers. */
export function makeModel(v: Variant, seed = 1): TestModel {
  const rand = rng(seed);
  const tensors: TensorDeclaration[] = [{ name: "tok_embeddings", shape: [32, DIM] }];
  if (!v.gated) tensors.push({ name: "pos_embeddings", shape: [64, DIM] });
  for (let l = 0; l < LAYERS; l++) {
    tensors.push(
      { name: `layers.${l}.attention_norm`, shape: [DIM] },
      { name: `layers.${l}.wq`, shape: [DIM, DIM] },
      { name: `layers.${l}.wk`, shape: [8, DIM] },
      { name: `layers.${l}.wv`, shape: [8, DIM] },
      { name: `layers.${l}.wo`, shape: [DIM, DIM] },
      { name: `layers.${l}.ffn_norm`, shape: [DIM] },
    );
  }
  // Odd sizes force padding between tensors and between q8 data and scales.
  tensors.push({ name: "odd", shape: [3, 5] }, { name: "norm", shape: [DIM] }, { name: "output", shape: [32, DIM] });
  const data = new Map<string, Float32Array>();
  for (const t of tensors) data.set(t.name, randomF32(rand, t.shape.reduce((a, b) => a * b, 1), 0.5));
  data.get("odd")!.fill(0, 5, 10); // an all-zero row: q8 scale 0
  const neurons = Array.from({ length: LAYERS }, () =>
    Array.from({ length: HIDDEN }, (_, i): NeuronWeights => ({
      ...(v.gated ? { gate: randomF32(rand, DIM) } : {}),
      up: randomF32(rand, DIM),
      down: i === 3 ? new Float32Array(DIM) : randomF32(rand, DIM, 2),
      ...(v.gated ? {} : { biasUp: rand() - 0.5 }),
    })),
  );
  const tokenizer = v.tokenizer === false ? new Uint8Array(0) : Uint8Array.from({ length: 123 }, () => Math.floor(rand() * 256));
  const decl: FlmDeclaration = {
    architecture: v.gated ? "llama" : "opt",
    config: {
      dim: DIM,
      hiddenDim: HIDDEN,
      nLayers: LAYERS,
      nHeads: 4,
      nKvHeads: v.gated ? 2 : 4,
      vocabSize: 32,
      seqLen: 64,
      normEps: v.gated ? 1e-5 : 1e-5,
      ropeTheta: 10000,
      ropeStyle: v.gated ? "interleaved" : "none",
      activation: v.gated ? "silu" : "relu",
      gated: v.gated,
      sharedClassifier: false,
      norm: v.gated ? "rmsnorm" : "layernorm",
      ...(v.gated ? {} : { maxPositions: 64 }),
    },
    dtype: { resident: v.dtype, ffn: v.dtype },
    tensors,
    tokenizer: { kind: v.tokenizer === false ? "none" : "llama2c", byteLength: tokenizer.byteLength },
    ...(v.alignment !== undefined ? { bundleAlignment: v.alignment } : {}),
    provenance: { source: "random test model", converter: "test", seed },
  };
  return { decl, tensors: data, neurons, tokenizer };
}

/** A MemorySink that records every write, so tests can check each byte is written exactly once. */
export class RecordingSink extends MemorySink {
  readonly ranges: [number, number][] = [];
  override async write(offset: number, bytes: Uint8Array): Promise<void> {
    this.ranges.push([offset, offset + bytes.byteLength]);
    await super.write(offset, bytes);
  }
  /** Asserts the writes tile [0, size) with no gap and no overlap. */
  expectTiles(size: number): void {
    const sorted = [...this.ranges].filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
    let at = 0;
    for (const [a, b] of sorted) {
      expect(a, "gap or overlap in written bytes").toBe(at);
      at = b;
    }
    expect(at).toBe(size);
  }
}

/** Writes a model through FlmWriter (layers in reverse order, to show order does not matter). */
export async function writeModel(model: TestModel, sink = new RecordingSink(), chunkBytes?: number): Promise<{ bytes: Uint8Array; writer: FlmWriter; sink: RecordingSink }> {
  const writer = new FlmWriter(sink, model.decl);
  for (const t of model.decl.tensors) await writer.writeTensor(t.name, model.tensors.get(t.name)!);
  if (model.tokenizer.byteLength > 0) await writer.writeTokenizer(model.tokenizer);
  for (let l = LAYERS - 1; l >= 0; l--) await writer.writeLayer(l, (i) => model.neurons[l][i], chunkBytes ? { chunkBytes } : {});
  await writer.finish();
  return { bytes: sink.bytes(), writer, sink };
}

/** Runs `f` and returns the FlashError it throws (fails the test if it does not throw one). */
export async function errorOf(f: () => unknown): Promise<FlashError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(FlashError);
    return e as FlashError;
  }
  throw new Error("expected an error, none was thrown");
}

/** The manifest JSON of a file, parsed. */
export function manifestJson(bytes: Uint8Array): any {
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  return JSON.parse(new TextDecoder().decode(bytes.subarray(HEADER_BYTES, HEADER_BYTES + len)));
}

/** A copy of `bytes` whose manifest is replaced by `mutate`'s edit of it (must still fit before the first section). */
export function withManifest(bytes: Uint8Array, mutate: (m: any) => void): Uint8Array {
  const m = manifestJson(bytes);
  const firstSection = Math.min(...m.sections.map((s: any) => s.offset));
  mutate(m);
  return withManifestText(bytes, JSON.stringify(m), firstSection);
}

/** A copy of `bytes` with raw manifest text (zero-filled up to `end`). */
export function withManifestText(bytes: Uint8Array, text: string | Uint8Array, end = 4096): Uint8Array {
  const json = typeof text === "string" ? new TextEncoder().encode(text) : text;
  if (HEADER_BYTES + json.byteLength > end) throw new Error("edited manifest does not fit");
  const out = bytes.slice();
  out.fill(0, HEADER_BYTES, end);
  out.set(json, HEADER_BYTES);
  new DataView(out.buffer).setUint32(12, json.byteLength, true);
  return out;
}

/** Independent reference quantizer (per the spec, written without the SDK's code). */
export function refQuantize(v: ArrayLike<number>): { q: number[]; scale: number } {
  let max = 0;
  for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i]));
  const scale = Math.fround(max / 127);
  const q: number[] = [];
  for (let i = 0; i < v.length; i++) {
    if (scale === 0) {
      q.push(0);
      continue;
    }
    const x = v[i] / scale;
    const r = Math.sign(x) * Math.floor(Math.abs(x) + 0.5); // ties away from zero
    q.push(Math.max(-127, Math.min(127, r)) + 0); // + 0 turns -0 into 0
  }
  return { q, scale };
}
