import { Presets, SingleBar } from "cli-progress";
import { ActivationRecorder, corpusSequences, openFlashModel, recordCorpus, trainPredictors, writeWithPredictor } from "@flashllm/sdk";
import { basename } from "node:path";
import { NodeFileSink } from "../file-sink.js";
import { NodeFileSource } from "../source/index.js";
import { pct, readText, ruleFor } from "./sparsity-common.js";

export interface CalibrateOptions {
  corpus: string;
  out?: string;
  rank: number;
  recall: number;
  positions: number;
  epochs: number;
  keepNorm: number;
  textOffset: number;
  textBytes?: number;
}

/**
 * `flashllm calibrate model.flm --corpus text.txt`: records each layer's FFN input and active neurons
 * on the corpus (dense), trains the low-rank predictors on the WASM kernels, and writes a copy of the
 * container with them in its resident section.
 */
export async function calibrateCommand(model: string, o: CalibrateOptions): Promise<void> {
  const out = o.out ?? model.replace(/\.flm$/, "") + "-pred.flm";
  const source = await NodeFileSource.open(model);
  const bar = new SingleBar({ format: "{task} [{bar}] {value}/{total}", hideCursor: true, stream: process.stderr }, Presets.shades_classic);
  try {
    let recorder: ActivationRecorder | undefined;
    const flash = await openFlashModel(source, { selector: "all", contextLength: 256, onActivations: (...a) => recorder!.record(...a) });
    const c = flash.config;
    const rule = ruleFor(c, o.keepNorm);
    recorder = new ActivationRecorder(c.dim, c.hiddenDim, c.nLayers, o.positions, rule);
    const text = await readText(o.corpus, o.textOffset, o.textBytes);
    const sequences = corpusSequences(text, flash.tokenizer, flash.transformer.contextLength);
    bar.start(o.positions, 0, { task: "recording activations" });
    await recordCorpus(flash, sequences, recorder, (n) => bar.update(n));
    bar.update(recorder.positions);
    bar.stop();
    bar.start(c.nLayers * o.epochs, 0, { task: "training predictors" });
    const { predictor, quality } = trainPredictors(flash.kernels, recorder.layers.map((l) => ({ ...l, n: recorder!.positions })), c.dim, c.hiddenDim, {
      rank: o.rank,
      recallTarget: o.recall,
      epochs: o.epochs,
      onProgress: (l, e) => bar.update(l * o.epochs + e + 1),
    });
    bar.stop();
    const sink = await NodeFileSink.create(out);
    try {
      await writeWithPredictor(flash.file, predictor, sink, {
        corpus: basename(o.corpus),
        textOffset: o.textOffset,
        positions: recorder.positions,
        rule: rule.kind === "nonzero" ? "relu: h != 0" : `swiglu: neurons keeping ${o.keepNorm} of |h|^2`,
        rank: o.rank,
        epochs: o.epochs,
        quality,
      });
      await sink.commit();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    process.stdout.write(`calibrated on ${recorder.positions} positions (rule: ${rule.kind}); predictors of rank ${o.rank}, recall target ${o.recall}; validation split:\n`);
    process.stdout.write(`layer  recall  precision  predicted/token  truly active/token  of ${c.hiddenDim}\n`);
    quality.forEach((q, l) => process.stdout.write(`${String(l).padStart(5)}  ${pct(q.recall).padStart(6)}  ${pct(q.precision).padStart(9)}  ${q.predicted.toFixed(1).padStart(15)}  ${q.truth.toFixed(1).padStart(18)}\n`));
    process.stdout.write(`wrote ${out}\n`);
    await flash.dispose();
  } finally {
    bar.stop();
    await source.close();
  }
}
