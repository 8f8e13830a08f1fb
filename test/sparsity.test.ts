// Sparsity on the relufied stories260K: the ReLU forward pass against its reference, exact gate
// selection (bit-identical to dense), predictors calibrated and measured on text not used for
// calibration, and the errors a user can run into.
import { beforeAll, describe, expect, it } from "vitest";
import {
  ActivationRecorder, GateExactSelector, LowRankPredictor, MemorySink, MemorySource, TruthTap, convertLlama2c, corpusSequences, evaluateSparsity,
  loadLlama2c, openFlashModel, openFlm, readPredictor, recordCorpus, trainPredictors, writeWithPredictor, type Predictor, type TrainOptions,
} from "@flashllm/sdk/internal";
import { readFileSync } from "node:fs";
import { withManifest } from "../packages/sdk/test/format/helpers.js";
import { ROOT, SHARED_MODELS, STORIES_BIN, STORIES_TOK, hasShared, readBytes, readJson } from "./helpers.js";

const RELU_BIN = `${ROOT}packages/node-io/models/stories260K-relu/stories260K_relu.bin`;
const RELU_TOK = `${ROOT}packages/node-io/models/stories260K-relu/tok512.bin`;
const calibText = readFileSync(`${ROOT}test/data/tinystories_400k.txt`, "utf8");
const heldOut = readFileSync(`${ROOT}test/data/tinystories_tail60k.txt`, "utf8");
let flm: Uint8Array;

async function convert(bin: string, tok: string, activation: "silu" | "relu") {
  const sink = new MemorySink();
  await convertLlama2c(readBytes(bin), readBytes(tok), sink, { activation });
  return sink.bytes();
}

/** Records `positions` positions of `text` with the dense model, trains with the defaults, writes a copy with the predictors. */
async function calibrated(file: Uint8Array, dim: number, hidden: number, nLayers: number, text: string, positions: number, opts: TrainOptions = {}) {
  let recorder!: ActivationRecorder;
  const dense = await openFlashModel(new MemorySource(file), { selector: "all", contextLength: 256, onActivations: (...a) => recorder.record(...a) });
  recorder = new ActivationRecorder(dim, hidden, nLayers, positions, { kind: "nonzero" });
  await recordCorpus(dense, corpusSequences(text, dense.tokenizer, 256), recorder);
  expect(recorder.positions).toBe(positions);
  const { predictor, quality } = trainPredictors(dense.kernels, recorder.layers.map((l) => ({ ...l, n: positions })), dim, hidden, opts);
  for (const q of quality) expect(q.recall).toBeGreaterThanOrEqual(0.96 - 1e-9); // chosen on the validation split at 0.95 + the 0.01 margin
  const sink = new MemorySink();
  await writeWithPredictor(dense.file, predictor, sink, { test: true });
  await dense.dispose();
  return { withPred: sink.bytes(), predictor };
}

/** Dense (with a truth tap) vs sparse (the file's predictor, or `selector`'s) on held-out text. */
async function heldOutReport(file: Uint8Array, hidden: number, text: string, positions: number, predictor?: Predictor) {
  let tap!: TruthTap;
  const ref = await openFlashModel(new MemorySource(file), { selector: "all", contextLength: 256, onActivations: (...a) => tap.hook(...a) });
  tap = new TruthTap(hidden);
  const selector = predictor ? new LowRankPredictor(ref.kernels, predictor) : undefined;
  const sparse = await openFlashModel(new MemorySource(file), { contextLength: 256, ...(selector ? { selector } : {}) });
  const r = await evaluateSparsity(ref, sparse, selector ?? sparse.predictor!, tap, corpusSequences(text, ref.tokenizer, 256), { maxPositions: positions });
  console.log(
    `${r.selector} on ${r.positions} held-out positions: loss dense ${r.denseLoss.toFixed(4)} sparse ${r.sparseLoss.toFixed(4)} (${(100 * (r.sparseLoss / r.denseLoss - 1)).toFixed(2)}%), ` +
      `skipped ${(100 * r.neuronsSkipped).toFixed(1)}%, recall ${r.layers.map((q) => q.recall.toFixed(3)).join(" ")}, precision ${r.layers.map((q) => q.precision.toFixed(2)).join(" ")}`,
  );
  await sparse.dispose();
  selector?.dispose();
  await ref.dispose();
  return r;
}

beforeAll(async () => {
  flm = await convert(RELU_BIN, RELU_TOK, "relu");
});

describe("stories260K-relu", () => {
  it("greedy decoding matches the reference for every prompt", async () => {
    const model = await loadLlama2c(readBytes(RELU_BIN), readBytes(RELU_TOK), { activation: "relu" });
    for (const c of readJson(`${ROOT}test/data/stories260K-relu/greedy.json`).cases) {
      const tokens = [...c.prompt_tokens];
      for await (const t of model.generate(c.prompt, { temperature: 0, maxTokens: 257 - tokens.length })) tokens.push(t.token);
      expect(tokens, JSON.stringify(c.prompt)).toEqual(c.tokens);
    }
    await model.dispose();
  });

  it("exact gate selection: logits equal the dense model's while skipping most neurons", async () => {
    const dense = await openFlashModel(new MemorySource(flm), { selector: "all", contextLength: 64 });
    const exact = await GateExactSelector.fromFile(dense.kernels, dense.file);
    // No reuse between tokens, so the bytes read show the selection alone.
    const sparse = await openFlashModel(new MemorySource(flm), { selector: exact, contextLength: 64, strategy: "bundled", maxGapBytes: 0 });
    const toks = dense.tokenizer.encode("Once upon a time there was a girl named Lily. She liked to play in the park with her dog.");
    for (let pos = 0; pos < toks.length; pos++) {
      const a = (await dense.transformer.forward(toks[pos], pos)).slice();
      const b = await sparse.transformer.forward(toks[pos], pos);
      expect(Array.from(b)).toEqual(Array.from(a)); // skipped neurons are exact zeros: adding them changes nothing
    }
    const s = sparse.flash.stats;
    const skipped = 1 - s.activeNeurons / (s.layerRuns * 172);
    console.log(`exact selection skipped ${(100 * skipped).toFixed(1)}% of FFN neurons per token`);
    expect(skipped).toBeGreaterThan(0.8);
    const fullFfnPerToken = 5 * 172 * dense.file.manifest.ffn.bundleStride;
    expect(s.bytesRead / s.tokens).toBeLessThan(0.3 * fullFfnPerToken);
    exact.dispose();
    await sparse.dispose();
    await dense.dispose();
  });

  it("default calibration meets the aims on held-out text; the trained lookahead beats the untrained one; both survive the .flm", async () => {
    // Issue 12's aims, with trainPredictors' defaults: loss ≤ +2% vs dense, ≥ 85% of neurons skipped,
    // recall ≥ 0.95 in every layer, on text calibration never saw (test/data: the sample's first
    // 400 kB calibrates, its last 60 kB is held out). 16,000 positions is the CLI's default.
    const { withPred, predictor } = await calibrated(flm, 64, 172, 5, calibText, 16000);
    expect(predictor.layers.map((l) => l.rank)).toEqual([64, 64, 64, 64, 64]); // defaultRank(64, 172)
    expect(predictor.lookahead?.length).toBe(4);
    const reopened = await openFlm(new MemorySource(withPred));
    expect(reopened.manifest.predictor?.layers.length).toBe(5);
    expect(reopened.manifest.predictor?.lookahead?.length).toBe(4);
    expect(reopened.section("ffn.crc").crc32).toBe((await openFlm(new MemorySource(flm))).section("ffn.crc").crc32);
    const back = (await readPredictor(reopened))!;
    expect(back.lookahead!.map((l) => [l.rank, l.threshold])).toEqual(predictor.lookahead!.map((l) => [l.rank, l.threshold]));
    expect(Array.from(back.lookahead![2].b)).toEqual(Array.from(predictor.lookahead![2].b));

    // A fresh dense model with a truth tap, and the sparse model using the stored predictor by default.
    const r = await heldOutReport(withPred, 172, heldOut, 1500);
    expect(r.positions).toBe(1500);
    expect(r.sparseLoss / r.denseLoss).toBeLessThanOrEqual(1.02);
    expect(r.neuronsSkipped).toBeGreaterThanOrEqual(0.85);
    for (const q of r.layers) expect(q.recall).toBeGreaterThanOrEqual(0.95);
    // The lookahead, measured against the dense model's true active sets of the next layer: the
    // trained one keeps what it was trained for (0.9 on the validation split), far above what layer
    // l+1's own predictor names from layer l's input.
    const untrained = await heldOutReport(withPred, 172, heldOut, 1500, { ...back, lookahead: undefined });
    expect(r.lookahead?.length).toBe(4);
    for (const [i, q] of r.lookahead!.entries()) {
      expect(q.truth).toBeCloseTo(r.layers[i + 1].truth, 10);
      expect(q.recall).toBeGreaterThanOrEqual(0.85);
      expect(q.recall).toBeGreaterThan(untrained.lookahead![i].recall + 0.1);
    }
    console.log(`lookahead recall trained ${r.lookahead!.map((q) => q.recall.toFixed(3)).join(" ")} vs untrained ${untrained.lookahead!.map((q) => q.recall.toFixed(3)).join(" ")}`);
  }, 180_000);

  it.skipIf(!hasShared)("babyllama-tok105-relu: default calibration meets the aims on held-out text (every layer but the dead one)", async () => {
    const bin = `${SHARED_MODELS}/babyllama-tok105-relu/model5000_relu.bin`, tok = `${SHARED_MODELS}/babyllama-tok105-relu/tok105.bin`;
    const baby = await convert(bin, tok, "relu");
    const { withPred } = await calibrated(baby, 128, 352, 5, calibText, 16000, { lookahead: false });
    const r = await heldOutReport(withPred, 352, heldOut, 1500);
    expect(r.sparseLoss / r.denseLoss).toBeLessThanOrEqual(1.02);
    expect(r.neuronsSkipped).toBeGreaterThanOrEqual(0.85);
    // Layer 0 is dead (about one neuron in 352 fires per token): a miss there is one neuron in a thousand tokens.
    expect(r.layers[0].truth).toBeLessThan(2);
    for (const q of r.layers.slice(1)) expect(q.recall).toBeGreaterThanOrEqual(0.95);
  }, 180_000);
  if (!hasShared) it.skip(`babyllama-tok105-relu aims: ${SHARED_MODELS} is missing (the machine-local model collection)`, () => {});

  it("lookahead quality counts each layer's named set against the next layer's truth", async () => {
    let tap!: TruthTap;
    const ref = await openFlashModel(new MemorySource(flm), { selector: "all", contextLength: 64, onActivations: (...a) => tap.hook(...a) });
    tap = new TruthTap(172);
    const exact = await GateExactSelector.fromFile(ref.kernels, ref.file);
    const sparse = await openFlashModel(new MemorySource(flm), { selector: exact, contextLength: 64 });
    // The exact selector, with a lookahead that names every neuron, or none.
    const withAhead = (all: boolean) => ({
      name: "exact+lookahead",
      select: (l: number, x: Float32Array, out: Int32Array) => exact.select(l, x, out),
      predictNext: (_l: number, _x: Float32Array, out: Int32Array) => {
        if (!all) return 0;
        for (let i = 0; i < 172; i++) out[i] = i;
        return 172;
      },
    });
    const seqs = corpusSequences(heldOut, ref.tokenizer, 64);
    const every = await evaluateSparsity(ref, sparse, withAhead(true), tap, seqs, { maxPositions: 200 });
    const none = await evaluateSparsity(ref, sparse, withAhead(false), tap, seqs, { maxPositions: 200 });
    for (let l = 1; l < 5; l++) {
      const truth = every.layers[l].truth; // exact selection: selected = truly active
      expect(every.layers[l].recall).toBe(1);
      const q = every.lookahead![l - 1];
      expect([q.recall, q.selected, q.truth]).toEqual([1, 172, truth]);
      expect(q.precision).toBeCloseTo(truth / 172, 12);
      expect(none.lookahead![l - 1]).toEqual({ recall: 0, precision: 1, selected: 0, truth: none.layers[l].truth });
    }
    exact.dispose();
    await sparse.dispose();
    await ref.dispose();
  });

  it("a corpus too small says how much more text it needs", async () => {
    let recorder!: ActivationRecorder;
    const dense = await openFlashModel(new MemorySource(flm), { selector: "all", contextLength: 256, onActivations: (...a) => recorder.record(...a) });
    recorder = new ActivationRecorder(64, 172, 5, 3000, { kind: "nonzero" });
    const err = await recordCorpus(dense, corpusSequences(calibText.slice(0, 2000), dense.tokenizer, 256), recorder).catch((e) => e);
    expect(err.message).toMatch(/the calibration corpus gave \d+ token positions; at least 2000 are needed \(about \d+ more tokens/);
    await dense.dispose();
  });

  it("predictors trained for another model are refused", async () => {
    // Train a trivial predictor on the ReLU model, then graft it onto the SwiGLU stories260K container.
    const relu = await openFlm(new MemorySource(flm));
    const silu = await openFlm(new MemorySource(await convert(STORIES_BIN, STORIES_TOK, "silu")));
    const layer = { rank: 1, a: new Float32Array(64), b: new Float32Array(172), c: new Float32Array(172), threshold: 0 };
    const sink = new MemorySink();
    await writeWithPredictor(relu, { dim: 64, hiddenDim: 172, recallTarget: 0.9, layers: Array(5).fill(layer) }, sink);
    const grafted = await openFlm(new MemorySource(sink.bytes()));
    // Same shapes, different FFN: rewrite the silu model with the relu model's predictor metadata.
    const m = { ...silu.manifest };
    expect(grafted.manifest.predictor!.modelFingerprint).not.toBe(silu.section("ffn.crc").crc32);
    const sink2 = new MemorySink();
    await writeWithPredictor(silu, { dim: 64, hiddenDim: 172, recallTarget: 0.9, layers: Array(5).fill(layer) }, sink2);
    const bytes = sink2.bytes();
    // Patch the fingerprint in place (same length) to the relu model's.
    const text = new TextDecoder().decode(bytes.subarray(16, 16 + new DataView(bytes.buffer).getUint32(12, true)));
    const patched = text.replace(`"modelFingerprint":"${silu.section("ffn.crc").crc32}"`, `"modelFingerprint":"${relu.section("ffn.crc").crc32}"`);
    expect(patched).not.toBe(text);
    bytes.set(new TextEncoder().encode(patched), 16);
    const err = await openFlashModel(new MemorySource(bytes)).catch((e) => e);
    expect(err.message).toMatch(/trained for another model .* calibrate again/);
    expect(m.config.dim).toBe(64);
    // A lookahead needs one entry per layer but the last, when writing and when loading.
    const bad = { dim: 64, hiddenDim: 172, recallTarget: 0.9, layers: Array(5).fill(layer), lookahead: Array(5).fill(layer) };
    await expect(writeWithPredictor(relu, bad, new MemorySink())).rejects.toMatchObject({ code: "WRONG_DIMS", message: expect.stringMatching(/lookahead has 5 entries; a model of 5 layers needs 4/) });
    // A file whose manifest lists a lookahead entry too few, or a rank its tensors do not have, is refused when opened.
    const good = new MemorySink();
    await writeWithPredictor(relu, { ...bad, lookahead: Array(4).fill(layer) }, good);
    expect((await openFlm(new MemorySource(good.bytes()))).manifest.predictor?.lookahead?.length).toBe(4);
    const short = withManifest(good.bytes(), (m) => m.predictor.lookahead.pop());
    await expect(openFlm(new MemorySource(short))).rejects.toMatchObject({ code: "WRONG_DIMS", message: expect.stringMatching(/predictor\.lookahead.*4 entries/) });
    const wrongRank = withManifest(good.bytes(), (m) => (m.predictor.lookahead[2].rank = 2));
    await expect(openFlm(new MemorySource(wrongRank))).rejects.toMatchObject({ code: "WRONG_DIMS", message: expect.stringMatching(/predictor\.2\.next\.a/) });
    const small = await openFlashModel(new MemorySource(flm), { contextLength: 8 });
    expect(() => new LowRankPredictor(small.kernels, bad)).toThrow(/lookahead has 5 entries; 5 layers need 4/);
    await small.dispose();
    // And dims that do not fit are refused when writing.
    await expect(writeWithPredictor(silu, { dim: 32, hiddenDim: 172, recallTarget: 0.9, layers: [] }, new MemorySink())).rejects.toMatchObject({ code: "WRONG_DIMS" });
  });
});
