// Sparsity on the relufied stories260K: the ReLU forward pass against its reference, exact gate
// selection (bit-identical to dense), predictors calibrated and measured on text not used for
// calibration, and the errors a user can run into.
import { beforeAll, describe, expect, it } from "vitest";
import {
  ActivationRecorder, GateExactSelector, MemorySink, MemorySource, TruthTap, convertLlama2c, corpusSequences, evaluateSparsity,
  loadLlama2c, openFlashModel, openFlm, recordCorpus, trainPredictors, writeWithPredictor,
} from "@flashllm/sdk/internal";
import { readFileSync } from "node:fs";
import { ROOT, STORIES_BIN, STORIES_TOK, readBytes, readJson } from "./helpers.js";

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

  it("calibrate → store in the .flm → reopen → evaluate on held-out text", async () => {
    let recorder!: ActivationRecorder;
    const dense = await openFlashModel(new MemorySource(flm), { selector: "all", contextLength: 256, onActivations: (...a) => recorder.record(...a) });
    recorder = new ActivationRecorder(64, 172, 5, 4000, { kind: "nonzero" });
    await recordCorpus(dense, corpusSequences(calibText, dense.tokenizer, 256), recorder);
    expect(recorder.positions).toBe(4000);
    const { predictor, quality } = trainPredictors(dense.kernels, recorder.layers.map((l) => ({ ...l, n: 4000 })), 64, 172, { rank: 32, epochs: 6, recallTarget: 0.97 });
    for (const q of quality) expect(q.recall).toBeGreaterThanOrEqual(0.96); // chosen on the validation split itself
    const sink = new MemorySink();
    await writeWithPredictor(dense.file, predictor, sink, { test: true });
    const withPred = sink.bytes();
    const reopened = await openFlm(new MemorySource(withPred));
    expect(reopened.manifest.predictor?.layers.length).toBe(5);
    expect(reopened.section("ffn.crc").crc32).toBe(dense.file.section("ffn.crc").crc32);

    // A fresh dense model with a truth tap, and the sparse model using the stored predictor by default.
    let tap!: TruthTap;
    const ref = await openFlashModel(new MemorySource(withPred), { selector: "all", contextLength: 256, onActivations: (...a) => tap.hook(...a) });
    tap = new TruthTap(172);
    const sparse = await openFlashModel(new MemorySource(withPred), { contextLength: 256 });
    expect(sparse.predictor).toBeDefined();
    const r = await evaluateSparsity(ref, sparse, sparse.predictor!, tap, corpusSequences(heldOut, ref.tokenizer, 256), { maxPositions: 1500, greedyPrompts: ["Once upon a time"], greedyTokens: 50 });
    console.log(
      `predictor on ${r.positions} held-out positions: loss dense ${r.denseLoss.toFixed(4)} sparse ${r.sparseLoss.toFixed(4)}, top-1 ${(100 * r.top1Agreement).toFixed(1)}%, ` +
        `skipped ${(100 * r.neuronsSkipped).toFixed(1)}%, recall ${r.layers.map((q) => q.recall.toFixed(3)).join(" ")}, greedy ${r.greedy[0].agreed}/${r.greedy[0].of}`,
    );
    expect(r.positions).toBe(1500);
    expect(r.neuronsSkipped).toBeGreaterThan(0.6);
    expect(r.sparseLoss / r.denseLoss).toBeLessThan(1.04);
    expect(r.top1Agreement).toBeGreaterThan(0.85);
    for (const q of r.layers) expect(q.recall).toBeGreaterThan(0.85);
    // The lookahead (layer l+1's predictor on layer l's input), measured against layer l+1's truth.
    expect(r.lookahead?.length).toBe(4);
    console.log(`lookahead recall ${r.lookahead!.map((q) => q.recall.toFixed(3)).join(" ")}, precision ${r.lookahead!.map((q) => q.precision.toFixed(3)).join(" ")}`);
    for (const [i, q] of r.lookahead!.entries()) {
      expect(q.truth).toBeCloseTo(r.layers[i + 1].truth, 10);
      expect(q.recall).toBeGreaterThan(0.6);
    }
    for (const m of [dense, ref, sparse]) await m.dispose();
  }, 120_000);

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
    // And dims that do not fit are refused when writing.
    await expect(writeWithPredictor(silu, { dim: 32, hiddenDim: 172, recallTarget: 0.9, layers: [] }, new MemorySink())).rejects.toMatchObject({ code: "WRONG_DIMS" });
  });
});
