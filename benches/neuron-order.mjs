#!/usr/bin/env node
// `node benches/neuron-order.mjs model.flm text.txt [--positions 8000] [--window 4]`: which storage order
// of a layer's neurons makes a token's active (and, with a window, missing) neurons fall into the fewest
// runs, offline on recorded activations. Records the dense model's activations (ReLU truth: h != 0) on
// the text, builds each order on the first 75% of positions and scores it on the last 25% (text the order
// never saw). Orders: as converted, by frequency, a spectral order (Fiedler vector of the normalized
// co-activation graph), and the greedy co-activation chain (sparsity/neuron-order.ts): cosine or raw-count
// similarity, looking back 1 or 3 neurons, with and without 2-opt ("chain+2opt" is calibrate's default).
// Runs counted at gap 0 (consecutive only) and gap 2 (the planner merging across up to 2 unneeded
// neurons; "read" counts those gap neurons too). Prints per-model means over layers.
import { readFile } from "node:fs/promises";
import { ActivationRecorder, coactivationCounts, coactivationOrder, corpusSequences, openFlashModel, recordCorpus, storageRuns } from "@flashllm/sdk/internal";
import { NodeFileSource } from "@flashllm/node-io";

const [model, textPath] = process.argv.slice(2);
const arg = (name, def) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : def;
};
const positions = arg("positions", 8000);
const window = arg("window", 4);

const source = await NodeFileSource.open(model);
let recorder;
const flash = await openFlashModel(source, { selector: "all", contextLength: 256, onActivations: (...a) => recorder.record(...a) });
const c = flash.config;
recorder = new ActivationRecorder(c.dim, c.hiddenDim, c.nLayers, positions, { kind: "nonzero" });
const text = await readFile(textPath, "utf8");
await recordCorpus(flash, corpusSequences(text, flash.tokenizer, 256), recorder);
const n = recorder.positions;
const h = c.hiddenDim;
const trainN = Math.floor(n * 0.75);
const testN = n - trainN;

/** Active now and not in the previous window-1 positions: what a window cache has to read. */
function missing(active) {
  const out = new Uint8Array(active.length);
  for (let p = 0; p < active.length / h; p++) {
    for (let i = 0; i < h; i++) {
      if (!active[p * h + i]) continue;
      let seen = false;
      for (let j = 1; j < window && p - j >= 0 && !seen; j++) seen = active[(p - j) * h + i] === 1;
      if (!seen) out[p * h + i] = 1;
    }
  }
  return out;
}

function spectral(active, n) {
  const { counts, freq } = coactivationCounts(active, h, n);
  const d = new Float64Array(h);
  for (let i = 0; i < h; i++) for (let j = 0; j < h; j++) d[i] += counts[i * h + j];
  const inv = Float64Array.from(d, (x) => (x > 0 ? 1 / Math.sqrt(x) : 0));
  const top = Float64Array.from(d, (x) => Math.sqrt(x));
  const topNorm = Math.hypot(...top) || 1;
  for (let i = 0; i < h; i++) top[i] /= topNorm;
  let v = Float64Array.from({ length: h }, (_, i) => Math.sin(i * 12.9898) + 0.01);
  for (let it = 0; it < 500; it++) {
    let dot = 0;
    for (let i = 0; i < h; i++) dot += v[i] * top[i];
    for (let i = 0; i < h; i++) v[i] -= dot * top[i];
    const w = new Float64Array(h);
    // (I + S) v, S = D^-1/2 C D^-1/2: shifted so the power method finds the second-largest eigenvector.
    for (let i = 0; i < h; i++) {
      let s = 0;
      for (let j = 0; j < h; j++) s += counts[i * h + j] * inv[j] * v[j];
      w[i] = v[i] + inv[i] * s;
    }
    const norm = Math.hypot(...w) || 1;
    v = w.map((x) => x / norm);
  }
  const key = Float64Array.from(v, (x, i) => (freq[i] > 0 ? x * inv[i] : Infinity));
  return Int32Array.from(Array.from({ length: h }, (_, i) => i).sort((a, b) => key[a] - key[b] || a - b));
}

const methods = ["as converted", "frequency", "spectral", "chain tail 1", "chain tail 3", "count chain", "count+2opt", "chain+2opt", "tail 3+2opt"];
const sums = Object.fromEntries(methods.map((m) => [m, { a0: 0, a2: 0, r2: 0, m0: 0, m2: 0, mr2: 0 }]));
let act = 0;
let miss = 0;
for (let l = 0; l < c.nLayers; l++) {
  const all = recorder.layers[l].active.subarray(0, n * h);
  const train = all.subarray(0, trainN * h);
  const test = all.slice(trainN * h);
  const testMissing = missing(test);
  const { freq } = coactivationCounts(train, h, trainN);
  const orders = {
    "as converted": Int32Array.from({ length: h }, (_, i) => i),
    frequency: Int32Array.from(Array.from({ length: h }, (_, i) => i).sort((a, b) => freq[b] - freq[a] || a - b)),
    spectral: spectral(train, trainN),
    "chain tail 1": coactivationOrder(train, h, { tail: 1, improve: 0 }),
    "chain tail 3": coactivationOrder(train, h, { tail: 3, improve: 0 }),
    "count chain": coactivationOrder(train, h, { tail: 1, similarity: "count", improve: 0 }),
    "count+2opt": coactivationOrder(train, h, { tail: 1, similarity: "count", improve: 50 }),
    "chain+2opt": coactivationOrder(train, h), // the default
    "tail 3+2opt": coactivationOrder(train, h, { tail: 3, improve: 50 }),
  };
  for (const m of methods) {
    const o = orders[m];
    const a0 = storageRuns(test, h, o, 0, testN);
    const a2 = storageRuns(test, h, o, 2, testN);
    const m0 = storageRuns(testMissing, h, o, 0, testN);
    const m2 = storageRuns(testMissing, h, o, 2, testN);
    const s = sums[m];
    s.a0 += a0.runs; s.a2 += a2.runs; s.r2 += a2.read; s.m0 += m0.runs; s.m2 += m2.runs; s.mr2 += m2.read;
    if (m === "as converted") { act += a0.active; miss += m0.active; }
  }
}
const L = c.nLayers;
console.log(`${model}: ${n} positions (orders built on ${trainN}, scored on the last ${testN}); hidden ${h}; per layer and position: ${(act / L).toFixed(1)} active, ${(miss / L).toFixed(1)} missing with a window of ${window}`);
console.log(`order          runs(active,gap0)  runs(active,gap2)  read(active,gap2)  runs(missing,gap0)  runs(missing,gap2)  read(missing,gap2)`);
for (const m of methods) {
  const s = sums[m];
  console.log(`${m.padEnd(14)} ${(s.a0 / L).toFixed(2).padStart(17)}  ${(s.a2 / L).toFixed(2).padStart(17)}  ${(s.r2 / L).toFixed(1).padStart(17)}  ${(s.m0 / L).toFixed(2).padStart(18)}  ${(s.m2 / L).toFixed(2).padStart(18)}  ${(s.mr2 / L).toFixed(1).padStart(18)}`);
}
await flash.dispose();
await source.close();
