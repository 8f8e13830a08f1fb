import { FlashError, GateExactSelector, HotNeuronSelector, LowRankPredictor, TruthTap, corpusSequences, evaluateSparsity, openFlashModel, readPredictor, type FlashModel, type NeuronSelector, type ShardedFlashModel } from "@flashllm/sdk/internal";
import { requireFile } from "../input-files.js";
import { NodeShardHost } from "../shards/node-shard-host.js";
import { NodeFileSource } from "../source/index.js";
import { pct, readText, ruleFor } from "./sparsity-common.js";

export interface EvalOptions {
  text: string;
  selector: "predictor" | "exact" | "hot";
  /** Text to count neuron activity on for the hot set (not the evaluation text). */
  hotText?: string;
  hotBytes: number;
  positions: number;
  textOffset: number;
  textBytes?: number;
  keepNorm: number;
  json: boolean;
  /** Shard workers for the sparse model (predictor selector only; the dense reference stays one instance). */
  workers?: number;
}

const PROMPTS = ["Once upon a time", "Lily and Tom went to the park", "One day, a big bear"];

/**
 * `flashllm eval model.flm --text heldout.txt`: dense vs sparse on held-out text: loss, top-1
 * agreement, neurons skipped, per-layer recall and precision, greedy agreement length.
 */
export async function evalCommand(model: string, o: EvalOptions): Promise<void> {
  await requireFile(model, "model");
  await requireFile(o.text, "--text");
  const sourceD = await NodeFileSource.open(model);
  const sourceS = await NodeFileSource.open(model);
  try {
    let tap: TruthTap | undefined;
    const dense = await openFlashModel(sourceD, { selector: "all", contextLength: 256, onActivations: (...a) => tap!.hook(...a) });
    const c = dense.config;
    tap = new TruthTap(c.hiddenDim, ruleFor(c, o.keepNorm));
    const text = await readText(o.text, o.textOffset, o.textBytes);
    const sequences = corpusSequences(text, dense.tokenizer, 256);
    // Nothing to score would print NaN losses and 100% agreement: say so instead.
    if (sequences.length === 0) {
      throw new FlashError("BAD_ARGUMENT", `--text ${o.text} has no text to score${o.textOffset || o.textBytes !== undefined ? ` in bytes ${o.textOffset}…${o.textOffset + (o.textBytes ?? 0)}` : ""}: give held-out text of at least two tokens`, { path: o.text });
    }
    // The exact selector keeps every gate row in (the dense model's) memory; the predictor is the file's;
    // the hot set is counted on separate text with the dense model.
    const exact = o.selector === "exact" ? await GateExactSelector.fromFile(dense.kernels, dense.file) : undefined;
    const hot = o.selector === "hot" ? await hotSet(dense, tap, o) : undefined;
    const workers = o.workers ?? 1;
    if (workers > 1 && o.selector !== "predictor") throw new FlashError("BAD_ARGUMENT", `--workers ${workers} runs the file's predictors in the shards; --selector ${o.selector} needs one instance`);
    let sparse: FlashModel | ShardedFlashModel;
    let selector: NeuronSelector;
    let shardSelector: LowRankPredictor | undefined;
    if (workers > 1) {
      sparse = (await openFlashModel(sourceS, { selector: "predictor", contextLength: 256, workers, shardHost: new NodeShardHost(model) })) as ShardedFlashModel;
      // Recall and precision are measured on the dense model's FFN inputs with the same predictor, here.
      selector = shardSelector = new LowRankPredictor(dense.kernels, (await readPredictor(dense.file))!);
    } else {
      const one = await openFlashModel(sourceS, { selector: exact ?? hot ?? "predictor", contextLength: 256 });
      sparse = one;
      selector = exact ?? hot ?? one.predictor!;
    }
    const r = await evaluateSparsity(dense, sparse, selector, tap, sequences, { maxPositions: o.positions, greedyPrompts: PROMPTS, greedyTokens: 100 });
    if (o.json) {
      process.stdout.write(JSON.stringify(r, null, 2) + "\n");
    } else {
      const lines = [
        `selector ${r.selector} on ${r.positions} held-out positions:`,
        `  mean loss: dense ${r.denseLoss.toFixed(4)}, sparse ${r.sparseLoss.toFixed(4)} nats/token (${r.sparseLoss >= r.denseLoss ? "+" : ""}${pct(r.sparseLoss / r.denseLoss - 1)})`,
        `  top-1 next-token agreement ${pct(r.top1Agreement)}; FFN neurons skipped per token ${pct(r.neuronsSkipped)}`,
        `  layer  recall  precision  selected/token  truly active/token  (of ${c.hiddenDim})`,
        ...r.layers.map((q, l) => `  ${String(l).padStart(5)}  ${pct(q.recall).padStart(6)}  ${pct(q.precision).padStart(9)}  ${q.selected.toFixed(1).padStart(14)}  ${q.truth.toFixed(1).padStart(18)}`),
        ...(r.lookahead
          ? [
              `  lookahead (layer l+1's neurons named from layer l's FFN input, read while layer l computes):`,
              `  layer  recall  precision  named/token  truly active/token`,
              ...r.lookahead.map((q, i) => `  ${String(i + 1).padStart(5)}  ${pct(q.recall).padStart(6)}  ${pct(q.precision).padStart(9)}  ${q.selected.toFixed(1).padStart(11)}  ${q.truth.toFixed(1).padStart(18)}`),
            ]
          : []),
        `  greedy agreement (tokens equal to dense before the first difference):`,
        ...r.greedy.map((g) => `    ${JSON.stringify(g.prompt)}: ${g.agreed} of ${g.of}`),
      ];
      process.stdout.write(lines.join("\n") + "\n");
    }
    await sparse.dispose();
    shardSelector?.dispose();
    exact?.dispose();
    await dense.dispose();
  } finally {
    await sourceD.close();
    await sourceS.close();
  }
}

/** Counts how often each neuron is active on `--hot-text`, then keeps the most frequent covering 97% of activations. */
async function hotSet(dense: FlashModel, tap: TruthTap, o: EvalOptions): Promise<HotNeuronSelector> {
  if (!o.hotText) throw new Error("--selector hot needs --hot-text <file>: text to count neuron activity on (not the evaluation text)");
  const c = dense.config;
  const counts = Array.from({ length: c.nLayers }, () => new Float64Array(c.hiddenDim));
  tap.onLayer = (layer, _x, active) => {
    for (let i = 0; i < active.length; i++) counts[layer][i] += active[i];
  };
  const seqs = corpusSequences(await readText(o.hotText, 0, o.hotBytes), dense.tokenizer, 256);
  for (const seq of seqs) for (let pos = 0; pos + 1 < seq.length && pos < 256; pos++) await dense.transformer.forward(seq[pos], pos);
  tap.onLayer = undefined;
  return new HotNeuronSelector(counts, 0.97);
}
