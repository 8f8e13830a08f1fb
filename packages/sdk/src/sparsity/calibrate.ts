import { FlashError } from "../errors.js";
import type { FlmFile } from "../format/reader.js";
import { residentData } from "../format/reader.js";
import type { FlmSink } from "../format/sink.js";
import type { TensorDeclaration } from "../format/layout.js";
import type { Manifest, PredictorInfo } from "../format/types.js";
import { FlmWriter } from "../format/writer.js";
import { headMajorWo } from "../model/head-major.js";
import type { FlashModel } from "../flash/open.js";
import type { Tokenizer } from "../tokenizer/tokenizer.js";
import type { Predictor, PredictorLayer } from "./predictor.js";
import type { LayerActivations } from "./train.js";
import { storedInOrder } from "./neuron-order.js";

/** Which neurons count as truly active when recording (ARCHITECTURE.md §4). */
export type ActivityRule =
  /** ReLU models: the neuron's activation is not exactly zero. */
  | { kind: "nonzero" }
  /** SwiGLU models: the largest |h| that together keep `share` of Σh² at each position. */
  | { kind: "norm-share"; share: number };

/** Sets `active[neuron] = 1` for the neurons that count as active under `rule` (the rest untouched). */
export function markActive(rule: ActivityRule, neurons: Int32Array, h: Float32Array, active: Uint8Array): void {
  if (rule.kind === "nonzero") {
    for (let i = 0; i < neurons.length; i++) if (h[i] !== 0) active[neurons[i]] = 1;
    return;
  }
  const order = Array.from(neurons.keys()).sort((a, b) => Math.abs(h[b]) - Math.abs(h[a]));
  let total = 0;
  for (let i = 0; i < h.length; i++) total += h[i] * h[i];
  let kept = 0;
  for (const i of order) {
    if (kept >= rule.share * total) break;
    active[neurons[i]] = 1;
    kept += h[i] * h[i];
  }
}

/** The least positions that make a predictor worth training. */
export const MIN_CALIBRATION_POSITIONS = 2000;

/**
 * Cuts a corpus into token sequences the way the model saw text: stories separated by
 * `<|endoftext|>` (TinyStories) or blank lines, each encoded with BOS and cut at `maxLen`.
 */
export function corpusSequences(text: string, tokenizer: Tokenizer, maxLen: number): number[][] {
  const parts = text.includes("<|endoftext|>") ? text.split("<|endoftext|>") : text.split(/\n\s*\n/);
  return parts.map((p) => p.trim()).filter((p) => p.length > 0).map((p) => tokenizer.encode(p, true, false).slice(0, maxLen)).filter((t) => t.length > 1);
}

/**
 * Runs the model dense (every neuron) over token sequences, teacher-forced, and records each layer's
 * FFN input and which neurons were active. The model must be opened with `onActivations` routed to
 * the returned `record` function, and a cache that holds every neuron (no budget).
 */
export class ActivationRecorder {
  readonly layers: LayerActivations[];
  private n = 0;
  constructor(readonly dim: number, readonly hidden: number, nLayers: number, readonly capacity: number, readonly rule: ActivityRule) {
    this.layers = Array.from({ length: nLayers }, () => ({ x: new Float32Array(capacity * dim), active: new Uint8Array(capacity * hidden), n: 0 }));
  }

  /** Positions recorded so far. */
  get positions(): number {
    return this.n;
  }

  /** The `onActivations` hook: stores one layer's input and activity at the current position. */
  record = (layer: number, x: Float32Array, neurons: Int32Array, h: Float32Array): void => {
    const L = this.layers[layer];
    if (L.n >= this.capacity) return;
    for (let i = 0; i < h.length; i++) {
      if (!Number.isFinite(h[i]) || !Number.isFinite(x[i % x.length])) {
        throw new FlashError("BAD_ARGUMENT", `NaN or Inf in layer ${layer}'s FFN ${Number.isFinite(h[i]) ? "input" : `activation of neuron ${neurons[i]}`} at calibration position ${L.n}`, { layer, position: L.n });
      }
    }
    L.x.set(x, L.n * this.dim);
    markActive(this.rule, neurons, h, L.active.subarray(L.n * this.hidden, (L.n + 1) * this.hidden));
    L.n++;
    if (layer === this.layers.length - 1) this.n = L.n;
  };
}

/** Feeds token sequences through `model` (teacher-forced) until `recorder` is full or the text ends. */
export async function recordCorpus(model: FlashModel, sequences: number[][], recorder: ActivationRecorder, onProgress?: (positions: number) => void, signal?: AbortSignal): Promise<void> {
  for (const seq of sequences) {
    for (let pos = 0; pos < seq.length - 1 && pos < model.transformer.contextLength; pos++) {
      if (recorder.positions >= recorder.capacity) return;
      await model.transformer.forward(seq[pos], pos, signal);
    }
    onProgress?.(recorder.positions);
  }
  if (recorder.positions < MIN_CALIBRATION_POSITIONS) {
    throw new FlashError(
      "BAD_ARGUMENT",
      `the calibration corpus gave ${recorder.positions} token positions; at least ${MIN_CALIBRATION_POSITIONS} are needed ` +
        `(about ${MIN_CALIBRATION_POSITIONS - recorder.positions} more tokens, roughly ${Math.ceil(((MIN_CALIBRATION_POSITIONS - recorder.positions) * 4) / 1024)} KiB more text)`,
      { positions: recorder.positions, needed: MIN_CALIBRATION_POSITIONS },
    );
  }
}

/**
 * Writes a copy of the container with the predictors added to its resident section and described in
 * the manifest. FFN bundles are copied byte for byte, so the `ffn.crc` table, and with it the model
 * fingerprint the predictors carry, are unchanged. With `order` (per layer, `order[position]` = the
 * neuron stored there: sparsity/neuron-order.ts) the bundles, the predictor's rows and the CRC table
 * are written in that order instead, and the fingerprint is the permuted FFN's.
 */
export async function writeWithPredictor(file: FlmFile, predictor: Predictor, sink: FlmSink, calibration: Record<string, unknown> = {}, signal?: AbortSignal, order?: readonly Int32Array[]): Promise<Manifest> {
  const m = file.manifest;
  const c = m.config;
  if (predictor.dim !== c.dim || predictor.hiddenDim !== c.hiddenDim || predictor.layers.length !== c.nLayers) {
    throw new FlashError("WRONG_DIMS", `predictor for dim ${predictor.dim}, hidden ${predictor.hiddenDim}, ${predictor.layers.length} layers does not fit this model (dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers)`);
  }
  const stored = order ? await storedInOrder(file, predictor, order, signal) : undefined;
  if (stored) predictor = stored.predictor;
  const resident = await file.readResident({ signal });
  const kept = m.tensors.filter((t) => !t.name.startsWith("predictor."));
  const decl: TensorDeclaration[] = kept.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype }));
  // Each low-rank entry as `${prefix}.a/.b/.c`: the layers' predictors, then the trained lookahead's.
  const entries: [string, PredictorLayer][] = [...predictor.layers.map((p, l): [string, PredictorLayer] => [`predictor.${l}`, p]), ...(predictor.lookahead ?? []).map((p, l): [string, PredictorLayer] => [`predictor.${l}.next`, p])];
  if (predictor.lookahead && predictor.lookahead.length !== c.nLayers - 1) {
    throw new FlashError("WRONG_DIMS", `predictor lookahead has ${predictor.lookahead.length} entries; a model of ${c.nLayers} layers needs ${c.nLayers - 1}`);
  }
  for (const [name, p] of entries) {
    decl.push({ name: `${name}.a`, shape: [p.rank, c.dim], dtype: "f32" }, { name: `${name}.b`, shape: [c.hiddenDim, p.rank], dtype: "f32" }, { name: `${name}.c`, shape: [c.hiddenDim], dtype: "f32" });
  }
  const info: PredictorInfo = {
    kind: "lowrank",
    ...(predictor.recallTarget !== undefined ? { recallTarget: predictor.recallTarget } : {}),
    ...(predictor.input !== undefined ? { input: predictor.input } : {}),
    layers: predictor.layers.map((p) => ({ rank: p.rank, threshold: p.threshold })),
    modelFingerprint: stored?.fingerprint ?? file.section(m.ffn.crcSection).crc32,
    calibration,
  };
  if (predictor.lookahead) info.lookahead = predictor.lookahead.map((p) => ({ rank: p.rank, threshold: p.threshold }));
  const tokenizer = await file.readTokenizer({ signal });
  const stride = m.ffn.bundleStride;
  // The copy is written in the current layout (wo head-major), whatever layout the source has.
  const writer = new FlmWriter(sink, headMajorWo({
    architecture: m.architecture,
    config: c,
    dtype: m.dtype,
    tensors: decl,
    tokenizer: { kind: m.tokenizer.kind, byteLength: tokenizer.byteLength },
    bundleAlignment: stride & -stride, // the largest power of two dividing the stride reproduces it
    provenance: m.provenance,
    predictor: info,
    chatTemplate: m.chatTemplate,
  }));
  for (const t of kept) {
    const r = resident.get(t.name)!;
    await writer.writeTensor(t.name, residentData(r));
  }
  for (const [name, p] of entries) {
    await writer.writeTensor(`${name}.a`, p.a);
    await writer.writeTensor(`${name}.b`, p.b);
    await writer.writeTensor(`${name}.c`, p.c);
  }
  await writer.writeTokenizer(tokenizer);
  for (let l = 0; l < c.nLayers; l++) {
    const bytes = await file.readSection(m.ffn.layers[l].section, { signal });
    const at = stored?.orders[l];
    await writer.writeLayer(l, (i) => {
      const k = at ? at[i] : i;
      return bytes.subarray(k * stride, (k + 1) * stride);
    });
  }
  return writer.finish();
}

/** The predictors stored in an opened container, checked against the model they sit in. */
export async function readPredictor(file: FlmFile, signal?: AbortSignal): Promise<Predictor | undefined> {
  const m = file.manifest;
  const info = m.predictor;
  if (!info) return undefined;
  const fingerprint = file.section(m.ffn.crcSection).crc32;
  if (info.modelFingerprint !== fingerprint) {
    throw new FlashError("WRONG_DIMS", `the predictors in this file were trained for another model (fingerprint ${info.modelFingerprint}, this model's FFN is ${fingerprint}): calibrate again`, {
      expected: fingerprint,
      actual: info.modelFingerprint,
    });
  }
  const resident = await file.readResident({ signal });
  const f32 = (name: string) => {
    const t = resident.get(name);
    if (t?.dtype !== "f32") throw new FlashError("BAD_MANIFEST", `predictor tensor ${name} is missing`);
    return t.data.slice();
  };
  const layer = (p: { rank: number; threshold: number }, prefix: string): PredictorLayer => ({ rank: p.rank, threshold: p.threshold, a: f32(`${prefix}.a`), b: f32(`${prefix}.b`), c: f32(`${prefix}.c`) });
  const out: Predictor = {
    dim: m.config.dim,
    hiddenDim: m.config.hiddenDim,
    ...(info.recallTarget !== undefined ? { recallTarget: info.recallTarget } : {}),
    ...(info.input !== undefined ? { input: info.input } : {}),
    layers: info.layers.map((p, l) => layer(p, `predictor.${l}`)),
  };
  if (info.lookahead) out.lookahead = info.lookahead.map((p, l) => layer(p, `predictor.${l}.next`));
  return out;
}
