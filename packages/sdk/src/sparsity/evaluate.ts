import { FlashError } from "../errors.js";
import type { FlashModel } from "../flash/open.js";
import type { PredictingSelector } from "../flash/flash-ffn.js";
import type { ShardedFlashModel } from "../shard/open-sharded.js";
import type { NeuronSelector } from "./selector.js";
import type { ActivityRule } from "./calibrate.js";
import { markActive } from "./calibrate.js";

/** Per-layer selection quality against the truth recorded from the dense model. */
export interface LayerSelectionQuality {
  recall: number;
  precision: number;
  /** Mean neurons per position: selected, and truly active. */
  selected: number;
  truth: number;
}

/** What `flashllm eval` prints (docs/sparsity.md). */
export interface EvalReport {
  selector: string;
  /** Positions scored (teacher-forced next-token predictions). */
  positions: number;
  /** Mean loss in nats per token of the dense and the sparse model. */
  denseLoss: number;
  sparseLoss: number;
  /** Share of positions where both models' most likely next token agree. */
  top1Agreement: number;
  /** Share of FFN neurons the sparse model skipped per token. */
  neuronsSkipped: number;
  layers: LayerSelectionQuality[];
  /**
   * Selectors with a lookahead (`predictNext`): for layers 1…L-1, what was named from the previous
   * layer's FFN input against the truth of this layer (entry 0 is for layer 1).
   */
  lookahead?: LayerSelectionQuality[];
  /** Greedy generations: how many tokens the sparse model agrees with the dense one before the first difference. */
  greedy: { prompt: string; agreed: number; of: number }[];
}

/**
 * Compares a sparse model with the dense one on held-out token sequences. `dense` must be opened
 * with every neuron selected and its `onActivations` feeding `truth` (see {@link TruthTap}); `sparse`
 * with the selector under test, which is also asked, on the dense model's FFN inputs, what it would
 * select, for recall and precision.
 */
export async function evaluateSparsity(
  dense: FlashModel,
  /** One instance, or shard workers (their neuron counts are summed). */
  sparse: FlashModel | ShardedFlashModel,
  selector: NeuronSelector,
  tap: TruthTap,
  sequences: number[][],
  opts: { maxPositions?: number; greedyPrompts?: string[]; greedyTokens?: number; signal?: AbortSignal } = {},
): Promise<EvalReport> {
  const c = dense.config;
  // The truth tap hands over FFN inputs (after the norm); a residual-stream predictor would be asked the wrong question.
  if (selector.input === "residual") {
    throw new FlashError("UNSUPPORTED", `selector "${selector.name}" reads the residual stream before the FFN norm (imported from PowerInfer); recall is measured on FFN inputs only: calibrate predictors of this model's own to evaluate them`);
  }
  const maxPositions = opts.maxPositions ?? 4000;
  const counts = Array.from({ length: c.nLayers }, () => ({ tp: 0, fp: 0, fn: 0, sel: 0, truth: 0, n: 0 }));
  const out = new Int32Array(c.hiddenDim);
  const predictNext = (selector as Partial<PredictingSelector>).predictNext?.bind(selector);
  const ahead = Array.from({ length: c.nLayers - 1 }, () => ({ tp: 0, fp: 0, fn: 0, sel: 0, truth: 0, n: 0 }));
  const named = new Int32Array(c.hiddenDim); // the lookahead's set for the next layer, named at this one
  let nNamed = -1;
  tap.onLayer = (layer, x, active) => {
    count(counts[layer], out, selector.select(layer, x, out), active);
    if (!predictNext) return;
    if (layer > 0 && nNamed >= 0) count(ahead[layer - 1], named, nNamed, active);
    nNamed = layer + 1 < c.nLayers ? predictNext(layer, x, named) : -1;
  };
  let positions = 0, dLoss = 0, sLoss = 0, agree = 0;
  const before = await selectionCounts(sparse);
  outer: for (const seq of sequences) {
    for (let pos = 0; pos + 1 < seq.length && pos < dense.transformer.contextLength; pos++) {
      if (positions >= maxPositions) break outer;
      const ld = (await dense.transformer.forward(seq[pos], pos, opts.signal)).slice();
      const ls = await sparse.transformer.forward(seq[pos], pos, opts.signal);
      dLoss += nll(ld, seq[pos + 1]);
      sLoss += nll(ls, seq[pos + 1]);
      if (argmax(ld) === argmax(ls)) agree++;
      positions++;
    }
  }
  tap.onLayer = undefined;
  const after = await selectionCounts(sparse);
  const neuronsSkipped = 1 - (after.active - before.active) / Math.max(1, (after.layerRuns - before.layerRuns) * c.hiddenDim);
  const greedy: EvalReport["greedy"] = [];
  for (const prompt of opts.greedyPrompts ?? []) {
    const a: number[] = [], b: number[] = [];
    const n = opts.greedyTokens ?? 100;
    for await (const t of dense.generate(prompt, { temperature: 0, maxTokens: n, signal: opts.signal })) a.push(t.token);
    for await (const t of sparse.generate(prompt, { temperature: 0, maxTokens: n, signal: opts.signal })) b.push(t.token);
    let agreed = 0;
    while (agreed < a.length && agreed < b.length && a[agreed] === b[agreed]) agreed++;
    greedy.push({ prompt, agreed, of: a.length });
  }
  return {
    selector: selector.name,
    positions,
    denseLoss: dLoss / Math.max(1, positions),
    sparseLoss: sLoss / Math.max(1, positions),
    top1Agreement: agree / Math.max(1, positions),
    neuronsSkipped,
    greedy,
    layers: counts.map(quality),
    ...(predictNext ? { lookahead: ahead.map(quality) } : {}),
  };
}

interface Counts {
  tp: number;
  fp: number;
  fn: number;
  sel: number;
  truth: number;
  n: number;
}

// Adds one position's selection `ids[0…n-1]` against the truth `active` (0/1 per neuron).
function count(q: Counts, ids: Int32Array, n: number, active: Uint8Array): void {
  let tp = 0;
  for (let i = 0; i < n; i++) if (active[ids[i]]) tp++;
  let truth = 0;
  for (let i = 0; i < active.length; i++) truth += active[i];
  q.tp += tp;
  q.fp += n - tp;
  q.fn += truth - tp;
  q.sel += n;
  q.truth += truth;
  q.n++;
}

function quality(q: Counts): LayerSelectionQuality {
  return {
    recall: q.tp + q.fn > 0 ? q.tp / (q.tp + q.fn) : 1,
    precision: q.tp + q.fp > 0 ? q.tp / (q.tp + q.fp) : 1,
    selected: q.sel / Math.max(1, q.n),
    truth: q.truth / Math.max(1, q.n),
  };
}

/**
 * Turns the dense model's `onActivations` into per-layer truth (which neurons were active) and hands
 * it, with the FFN input, to whoever listens.
 */
export class TruthTap {
  onLayer: ((layer: number, x: Float32Array, active: Uint8Array) => void) | undefined;
  private readonly active: Uint8Array;
  constructor(hidden: number, private readonly rule: ActivityRule = { kind: "nonzero" }) {
    this.active = new Uint8Array(hidden);
  }
  hook = (layer: number, x: Float32Array, neurons: Int32Array, h: Float32Array): void => {
    if (!this.onLayer) return;
    this.active.fill(0);
    markActive(this.rule, neurons, h, this.active);
    this.onLayer(layer, x, this.active);
  };
}

function nll(logits: Float32Array, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return -(logits[target] - max - Math.log(sum));
}

function argmax(x: Float32Array): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
}

/** Neurons selected and layer evaluations so far: one instance's, or every shard's neurons summed. */
async function selectionCounts(m: FlashModel | ShardedFlashModel): Promise<{ active: number; layerRuns: number }> {
  if ("flash" in m) return { active: m.flash.stats.activeNeurons, layerRuns: m.flash.stats.layerRuns };
  const figures = await m.shardFigures();
  return { active: figures.reduce((a, f) => a + f.stats.activeNeurons, 0), layerRuns: figures[0].stats.layerRuns };
}
