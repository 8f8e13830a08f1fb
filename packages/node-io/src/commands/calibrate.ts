import { Presets, SingleBar } from "cli-progress";
import { ActivationRecorder, coactivationOrder, corpusSequences, defaultRank, storageRuns, openFlashModel, recordCorpus, trainPredictors, writeWithPredictor, type FlashModel, type PredictorQuality } from "@flashllm/sdk/internal";
import { basename } from "node:path";
import { NodeFileSink } from "../file-sink.js";
import { requireFile } from "../input-files.js";
import { NodeFileSource } from "../source/index.js";
import { pct, readText, ruleFor } from "./sparsity-common.js";

export interface CalibrateOptions {
  corpus: string;
  out?: string;
  /** Predictor rank; default `defaultRank(dim, hidden)`. */
  rank?: number;
  recall: number;
  /** Thresholds are chosen for `recall + recallMargin` on the validation split. Default 0.01. */
  recallMargin?: number;
  positions: number;
  epochs: number;
  keepNorm: number;
  textOffset: number;
  textBytes?: number;
  /** Store each layer's neurons in co-activation order (sparsity/neuron-order.ts). Default true. */
  reorder?: boolean;
  /** Train the lookahead (layer l+1's neurons from layer l's input) too. Default true. */
  lookahead?: boolean;
}

/** What {@link calibrateFile} measured, for the command's report. */
export interface CalibrationResult {
  positions: number;
  rule: string;
  hiddenDim: number;
  rank: number;
  quality: PredictorQuality[];
  /** With reordering: per layer, mean runs of consecutive stored neurons a position's active set falls into, before and after. */
  order?: { method: string; runsBefore: number[]; runsAfter: number[] };
  /** The trained lookahead's quality on the validation split (entry l: layer l+1 named from layer l). */
  lookaheadQuality?: PredictorQuality[];
  /** Wall time of recording and of training, ms. */
  recordMs: number;
  trainMs: number;
}

/**
 * Records each layer's FFN input and active neurons on the corpus (dense), trains the low-rank
 * predictors on the WASM kernels, and writes a copy of the container with them in its resident section
 * (through a temp file renamed into place). `progress` shows the two phases (omit it for silence).
 */
export async function calibrateFile(model: string, out: string, o: CalibrateOptions, progress?: SingleBar): Promise<CalibrationResult> {
  await requireFile(model, "model");
  await requireFile(o.corpus, "--corpus");
  const source = await NodeFileSource.open(model);
  let flash: FlashModel | undefined;
  try {
    let recorder: ActivationRecorder | undefined;
    flash = await openFlashModel(source, { selector: "all", contextLength: 256, onActivations: (...a) => recorder!.record(...a) });
    const c = flash.config;
    const rule = ruleFor(c, o.keepNorm);
    recorder = new ActivationRecorder(c.dim, c.hiddenDim, c.nLayers, o.positions, rule);
    const text = await readText(o.corpus, o.textOffset, o.textBytes);
    const sequences = corpusSequences(text, flash.tokenizer, flash.transformer.contextLength);
    const t0 = performance.now();
    progress?.start(o.positions, 0, { task: "recording activations" });
    await recordCorpus(flash, sequences, recorder, (n) => progress?.update(n));
    progress?.update(recorder.positions);
    progress?.stop();
    const t1 = performance.now();
    const lookahead = o.lookahead ?? true;
    const rank = o.rank ?? defaultRank(c.dim, c.hiddenDim);
    progress?.start((lookahead ? 2 * c.nLayers - 1 : c.nLayers) * o.epochs, 0, { task: "training predictors" });
    const { predictor, quality, lookaheadQuality } = trainPredictors(flash.kernels, recorder.layers.map((l) => ({ ...l, n: recorder!.positions })), c.dim, c.hiddenDim, {
      rank,
      recallTarget: o.recall,
      recallMargin: o.recallMargin,
      epochs: o.epochs,
      lookahead,
      onProgress: (l, e) => progress?.update(l * o.epochs + e + 1),
    });
    const t2 = performance.now();
    progress?.stop();
    const order = o.reorder === false ? undefined : neuronOrder(recorder);
    const sink = await NodeFileSink.create(out);
    try {
      await writeWithPredictor(flash.file, predictor, sink, {
        corpus: basename(o.corpus),
        textOffset: o.textOffset,
        positions: recorder.positions,
        rule: rule.kind === "nonzero" ? "relu: h != 0" : `swiglu: neurons keeping ${o.keepNorm} of |h|^2`,
        rank,
        recallMargin: o.recallMargin ?? 0.01,
        epochs: o.epochs,
        quality,
        neuronOrder: order ? { method: order.method, runsBefore: order.runsBefore, runsAfter: order.runsAfter } : "as converted",
        ...(lookaheadQuality ? { lookaheadQuality } : {}),
      }, undefined, order?.orders);
      await sink.commit();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    return { positions: recorder.positions, rule: rule.kind, hiddenDim: c.hiddenDim, rank, quality, lookaheadQuality, recordMs: t1 - t0, trainMs: t2 - t1, order };
  } finally {
    progress?.stop();
    await flash?.dispose();
    await source.close();
  }
}

/**
 * Each layer's co-activation order from the recorded activity, with the mean number of storage runs a
 * position's active set falls into before and after (gap 0: what reordering does to read counts).
 */
function neuronOrder(recorder: ActivationRecorder): { method: string; orders: Int32Array[]; runsBefore: number[]; runsAfter: number[] } {
  const n = recorder.positions;
  const h = recorder.hidden;
  const identity = Int32Array.from({ length: h }, (_, i) => i);
  const orders = recorder.layers.map((l) => coactivationOrder(l.active, h, { positions: n }));
  const runs = (order: Int32Array, l: number) => Number(storageRuns(recorder.layers[l].active, h, order, 0, n).runs.toFixed(2));
  return { method: "coactivation-chain", orders, runsBefore: orders.map((_, l) => runs(identity, l)), runsAfter: orders.map((o, l) => runs(o, l)) };
}

/** `flashllm calibrate model.flm --corpus text.txt`: {@link calibrateFile} with progress bars and a per-layer report. */
export async function calibrateCommand(model: string, o: CalibrateOptions): Promise<void> {
  const out = o.out ?? model.replace(/\.flm$/, "") + "-pred.flm";
  const bar = new SingleBar({ format: "{task} [{bar}] {value}/{total}", hideCursor: true, stream: process.stderr }, Presets.shades_classic);
  const r = await calibrateFile(model, out, o, bar);
  const w = (t: string) => process.stdout.write(t);
  w(`calibrated on ${r.positions} positions (rule: ${r.rule}); predictors of rank ${r.rank}, recall target ${o.recall} (thresholds at ${(o.recall + (o.recallMargin ?? 0.01)).toFixed(3)} on the validation split); validation split:\n`);
  w(`layer  recall  precision  predicted/token  truly active/token  of ${r.hiddenDim}\n`);
  const row = (l: number, q: PredictorQuality) => w(`${String(l).padStart(5)}  ${pct(q.recall).padStart(6)}  ${pct(q.precision).padStart(9)}  ${q.predicted.toFixed(1).padStart(15)}  ${q.truth.toFixed(1).padStart(18)}\n`);
  r.quality.forEach((q, l) => row(l, q));
  if (r.lookaheadQuality) {
    w(`lookahead (layer l's neurons named from layer l-1's FFN input):\n`);
    r.lookaheadQuality.forEach((q, l) => row(l + 1, q));
  }
  w(`recording ${(r.recordMs / 1000).toFixed(1)} s, training ${(r.trainMs / 1000).toFixed(1)} s\n`);
  if (r.order) w(`neurons stored in co-activation order: a position's active set falls into ${r.order.runsBefore.map((b, l) => `${b}→${r.order!.runsAfter[l]}`).join(", ")} runs per layer (--no-reorder keeps the order)\n`);
  w(`wrote ${out}\n`);
}
