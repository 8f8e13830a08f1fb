// A/B of two builds of the kernels on the same data, interleaved in one process (A B A B ...), so that
// ratios hold on a machine other processes keep busy. Times are CPU time of this process.
//
//   node --no-liftoff benches/kernels-ab.mjs OLD.wasm NEW.wasm [--rounds N]
//
// `--no-liftoff`: both builds run TurboFan code from the first call. With V8's default tiering the
// optimized code is compiled in the background, and on a busy machine one build can stay on the
// baseline compiler for a whole case (seen here as a spurious 0.5x).
//
// Kernels compared: matvec_q8 (4096×4096, 4096×11008), matvec_q4_0 (4096×11008) and ffn_bundled
// (q8 and q4_0, dim 4096, 1101 of 11008 neurons at random slots of 5504, gated SiLU; and q8 over 24000
// slots with 16 active sets used in turn, so that bundles come from DRAM), plus read_floor over the
// same bytes. Before timing, each pair of outputs is compared: equal bits are reported, as a check
// that a change kept the documented summation order.

import { readFileSync } from "node:fs";
import os from "node:os";
import { fillRandom } from "./random.mjs";

const args = process.argv.slice(2);
const ri = args.indexOf("--rounds");
const ROUNDS = ri >= 0 ? Number(args[ri + 1]) : 5;
const files = args.filter((a, i) => !a.startsWith("--") && !(ri >= 0 && i === ri + 1));
if (files.length !== 2) {
  console.error("usage: node benches/kernels-ab.mjs OLD.wasm NEW.wasm [--rounds N]");
  process.exit(2);
}

async function instance(file) {
  const { instance } = await WebAssembly.instantiate(readFileSync(file), {});
  return instance.exports;
}

/** Seconds of CPU time per call: best of `samples` samples of `inner` calls. */
function cpuTime(fn, inner, samples = 5) {
  let best = Infinity;
  for (let s = 0; s < samples; s++) {
    const c = process.cpuUsage();
    for (let i = 0; i < inner; i++) fn();
    const u = process.cpuUsage(c);
    best = Math.min(best, (u.user + u.system) / 1e6 / inner);
  }
  return best;
}

/** One case set up identically in one module: returns { run, floor, out() }. */
function setupCase(k, c) {
  const alloc = (n) => k.fl_alloc(n, 64);
  const mem = () => k.memory.buffer;
  if (c.kind === "matvec_q8" || c.kind === "matvec_q4_0") {
    const { rows, cols } = c;
    const wBytes = c.kind === "matvec_q8" ? rows * cols : (rows * cols / 32) * 18;
    const w = alloc(wBytes), s = alloc(4 * rows), x = alloc(4 * cols), xq = alloc((cols + 8) * 2), out = alloc(4 * rows);
    const tmp = new Float32Array(wBytes / 4 + 1);
    fillRandom(tmp, 7 + rows + cols);
    const wb = new Uint8Array(mem(), w, wBytes);
    const tb = new Uint8Array(tmp.buffer);
    for (let i = 0; i < wBytes; i++) wb[i] = tb[4 * (i >> 2) + (i & 3)] ^ (i * 131);
    if (c.kind === "matvec_q4_0") for (let b = 0; b < wBytes; b += 18) { wb[b] = 0x66; wb[b + 1] = 0x1e; } // d ≈ 0.0065
    const sc = new Float32Array(mem(), s, rows);
    for (let r = 0; r < rows; r++) sc[r] = 0.001 + r * 1e-6;
    fillRandom(new Float32Array(mem(), x, cols), 99 + cols);
    const run = c.kind === "matvec_q8"
      ? () => k.matvec_q8(out, w, s, x, xq, rows, cols)
      : () => k.matvec_q4_0(out, w, x, xq, rows, cols);
    return { run, floor: () => k.read_floor(w, wBytes), bytes: wBytes + (c.kind === "matvec_q8" ? 4 * rows : 0), out: () => new Float32Array(mem(), out, rows).slice() };
  }
  // ffn_bundled
  const { dim, hidden, dtype } = c;
  const rowB = dtype === 1 ? dim : (dim / 32) * 18;
  const bundle = 16 + 3 * rowB, stride = Math.ceil(bundle / 16) * 16, nSlots = c.slots ?? hidden >> 1;
  const slots = alloc(stride * nSlots), x = alloc(4 * dim), xq = alloc((dim + 8) * 2), out = alloc(4 * dim);
  // `sets` different active sets, used in turn: with many slots, a call then finds its bundles in DRAM
  // (as a model's layers do), not in the cache the previous call left them in.
  const nActive = Math.round(hidden * 0.1), sets = c.sets ?? 1, ids = alloc(4 * nActive * sets);
  const tmp = new Float32Array(stride / 4);
  for (let s = 0; s < nSlots; s++) {
    fillRandom(tmp, 1000 + s);
    const b = new Uint8Array(mem(), slots + s * stride, stride);
    b.set(new Uint8Array(tmp.buffer));
    const hdr = new Float32Array(mem(), slots + s * stride, 4);
    hdr.set([0.002, 0.002, 0.002, 0.0]);
    if (dtype === 4) for (let r = 0; r < 3; r++) for (let o = 16 + r * rowB; o < 16 + (r + 1) * rowB; o += 18) { b[o] = 0x66; b[o + 1] = 0x1e; }
  }
  fillRandom(new Float32Array(mem(), x, dim), 5);
  const idv = new Uint32Array(mem(), ids, nActive * sets);
  let seed = 12345;
  for (let i = 0; i < nActive; i++) { seed = (seed * 1103515245 + 12345) >>> 0; idv[i] = seed % nSlots; }
  const spans = Array.from(idv, (s) => slots + s * stride);
  let turn = 0, fturn = 0;
  return {
    run: () => k.ffn_bundled(out, x, dim, slots, stride, ids + 4 * nActive * (turn++ % sets), nActive, dtype, 1, 1, xq, 0, 0),
    floor: () => { const f = (fturn++ % sets) * nActive; for (let i = f; i < f + nActive; i++) k.read_floor(spans[i], bundle); },
    bytes: nActive * bundle,
    out: () => new Float32Array(mem(), out, dim).slice(),
  };
}

const cases = [
  { name: "matvec_q8 4096×4096", kind: "matvec_q8", rows: 4096, cols: 4096 },
  { name: "matvec_q8 4096×11008", kind: "matvec_q8", rows: 4096, cols: 11008 },
  { name: "matvec_q8 11008×4096", kind: "matvec_q8", rows: 11008, cols: 4096 },
  { name: "matvec_q4_0 4096×11008", kind: "matvec_q4_0", rows: 4096, cols: 11008 },
  { name: "ffn_bundled q8 10%", kind: "ffn", dim: 4096, hidden: 11008, dtype: 1 },
  { name: "ffn_bundled q4_0 10%", kind: "ffn", dim: 4096, hidden: 11008, dtype: 4 },
  // 24000 slots (295 MB) and 16 active sets (216 MB): each call's bundles come from DRAM
  { name: "ffn_bundled q8 10% DRAM", kind: "ffn", dim: 4096, hidden: 11008, dtype: 1, slots: 24000, sets: 16 },
];

const A = await instance(files[0]), B = await instance(files[1]);
console.log(`A ${files[0]}\nB ${files[1]}\nload ${os.loadavg().map((v) => v.toFixed(2)).join(" ")} at start; GB/s = weight bytes / best CPU time per round`);
for (const c of cases) {
  const a = setupCase(A, c), b = setupCase(B, c);
  a.run(); b.run();
  const oa = a.out(), ob = b.out();
  let same = oa.length === ob.length, maxRel = 0, den = 0;
  for (let i = 0; i < oa.length; i++) {
    if (Object.is(oa[i], ob[i]) === false) same = false;
    maxRel = Math.max(maxRel, Math.abs(oa[i] - ob[i]));
    den = Math.max(den, Math.abs(oa[i]));
  }
  const est = cpuTime(a.run, 1, 1);
  const inner = Math.max(1, Math.round(0.05 / Math.max(est, 1e-6)));
  const ra = [], rb = [], rf = [];
  for (let r = 0; r < ROUNDS; r++) {
    ra.push(a.bytes / cpuTime(a.run, inner) / 1e9);
    rb.push(a.bytes / cpuTime(b.run, inner) / 1e9);
    rf.push(a.bytes / cpuTime(a.floor, inner) / 1e9);
  }
  const med = (v) => [...v].sort((p, q) => p - q)[v.length >> 1];
  const ratios = ra.map((v, i) => rb[i] / v);
  console.log(`${c.name.padEnd(24)} A ${med(ra).toFixed(2).padStart(6)}  B ${med(rb).toFixed(2).padStart(6)} GB/s  B/A ${med(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})  floor ${med(rf).toFixed(2)}  outputs ${same ? "bit-identical" : `differ (max ${(maxRel / (den || 1)).toExponential(1)} rel)`}`);
}
console.log(`load ${os.loadavg().map((v) => v.toFixed(2)).join(" ")} at end`);
