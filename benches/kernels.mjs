// Kernel microbenchmark: matrix-vector products in the flashllm WASM kernels against plain JS.
//
//   node --expose-gc benches/kernels.mjs [--quick] [--json out.json]
//
// For every size (rows×cols) it times
//   wasm simd f32    matvec_f32         (f32x4 SIMD)
//   wasm scalar f32  matvec_f32_scalar  (same module, one scalar accumulator, no SIMD intrinsics)
//   js f32 loop      a plain double loop over Float32Array views, written below
//   wasm q8          matvec_q8          (int8 weights, one f32 scale per row, x quantized to i16)
//   wasm simd f32ᵀ   matvec_t_f32       (out[c] = Σ_r x[r]·w[r][c], x has `rows` entries)
// and reports the median time per call after warm-up, GFLOP/s (2·rows·cols flops) and the effective
// bandwidth of the weights read (rows·cols·4 bytes for f32, rows·cols + rows·4 bytes for q8).
//
// Every variant's output is checked against a reference once per size BEFORE it is timed; a variant
// that fails gets no figures (the row says FAIL and the process exits with code 1).
//   error = max_i |out_i − ref_i| / max_i |ref_i|     (relative to the output's largest magnitude)
//   simd f32, js   vs scalar f32           ≤ 1e-4
//   f32ᵀ           vs a JS f64 transposed reference   ≤ 1e-4
//   q8             vs scalar f32           ≤ 1e-2 (the weights are rounded to 1/127 steps)

import os from "node:os";
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Kernels } from "../packages/sdk/dist/internal.js";

// ---------------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const opts = { quick: false, json: null };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--quick") opts.quick = true;
  else if (a === "--json") {
    opts.json = argv[++i];
    if (!opts.json) usage("--json needs a file name");
  } else if (a.startsWith("--json=")) opts.json = a.slice("--json=".length);
  else if (a === "--help" || a === "-h") usage();
  else usage(`unknown argument ${a}`);
}

function usage(err) {
  if (err) console.error(`kernels.mjs: ${err}`);
  console.error("usage: node --expose-gc benches/kernels.mjs [--quick] [--json out.json]");
  process.exit(err ? 2 : 0);
}

const FULL_SIZES = [
  [64, 64],
  [256, 256],
  [768, 768],
  [1024, 4096],
  [4096, 4096],
  [4096, 11008],
  [11008, 4096],
];
const QUICK_SIZES = [
  [64, 64],
  [768, 768],
  [4096, 4096],
];
const SIZES = opts.quick ? QUICK_SIZES : FULL_SIZES;
/** Seconds of timed calls per (size, variant), and the bounds on the number of samples. */
const BUDGET_S = opts.quick ? 0.08 : 0.3;
const MIN_SAMPLES = 3;
const MAX_SAMPLES = opts.quick ? 7 : 15;
/** Seconds of warm-up per (size, variant) (at least two calls). */
const WARMUP_S = opts.quick ? 0.02 : 0.05;

const TOL_F32 = 1e-4;
const TOL_Q8 = 1e-2;

// ---------------------------------------------------------------------------------------------
// Helpers

/** Fills `a` with uniform values in [-1, 1) from a xorshift32 stream (fast enough for 45M floats). */
function fillRandom(a, seed) {
  let s = seed >>> 0 || 0x9e3779b9;
  const n = a.length;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (s >>> 0) * 4.656612873077393e-10 - 1; // 2^-31
  }
}

/** The plain TypeScript/JS baseline: out[i] = Σ_j w[i*cols+j]·x[j] (accumulated in a JS number). */
function matvecJs(out, w, x, rows, cols) {
  for (let i = 0; i < rows; i++) {
    const base = i * cols;
    let s = 0;
    for (let j = 0; j < cols; j++) s += w[base + j] * x[j];
    out[i] = s;
  }
}

/** f64 reference of the transposed product: out[c] = Σ_r x[r]·w[r*cols+c]. */
function matvecTRef(w, x, rows, cols) {
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const xr = x[r];
    const base = r * cols;
    for (let c = 0; c < cols; c++) acc[c] += xr * w[base + c];
  }
  return acc;
}

/** max|a−b| / max|b|; NaN/Infinity anywhere makes it Infinity. */
function relErr(a, b) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= num)) num = d; // also catches NaN
    const m = Math.abs(b[i]);
    if (m > den) den = m;
  }
  if (!Number.isFinite(num)) return Infinity;
  return den > 0 ? num / den : num;
}

/**
 * Times `fn`: warm-up (≥ 2 calls, ≥ WARMUP_S), then `samples` samples of `inner` calls each, sized so
 * the timed part takes about BUDGET_S. Returns seconds per call (median, min, max over samples).
 */
function timeIt(fn) {
  let calls = 0;
  const w0 = performance.now();
  let el = 0;
  while (calls < 2 || el < WARMUP_S * 1e3) {
    fn();
    calls++;
    el = performance.now() - w0;
  }
  // Estimate from the later warm-up calls when the first was slow (compilation).
  const t1 = performance.now();
  fn();
  const est = Math.max((performance.now() - t1) / 1e3, 1e-8);
  const totalCalls = Math.max(1, Math.floor(BUDGET_S / est));
  const samples = Math.max(MIN_SAMPLES, Math.min(MAX_SAMPLES, totalCalls));
  const inner = Math.max(1, Math.round(totalCalls / samples));
  const per = [];
  for (let s = 0; s < samples; s++) {
    const t = performance.now();
    for (let k = 0; k < inner; k++) fn();
    per.push((performance.now() - t) / 1e3 / inner);
  }
  per.sort((a, b) => a - b);
  const mid = per.length >> 1;
  const median = per.length % 2 ? per[mid] : (per[mid - 1] + per[mid]) / 2;
  return { median, min: per[0], max: per[per.length - 1], samples, inner };
}

function fmtTime(s) {
  if (s < 1e-6) return `${(s * 1e9).toFixed(0)} ns`;
  if (s < 1e-3) return `${(s * 1e6).toFixed(s < 1e-5 ? 2 : 1)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(s < 1e-2 ? 3 : 2)} ms`;
  return `${s.toFixed(3)} s`;
}
const fmtNum = (v, d = 2) => (v == null || !Number.isFinite(v) ? "—" : v.toFixed(d));
const fmtRatio = (v) => (v == null || !Number.isFinite(v) ? "—" : `${v.toFixed(2)}×`);
const fmtMB = (b) => (b < 2 ** 20 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const gc = () => globalThis.gc?.();

// ---------------------------------------------------------------------------------------------
// Header

const cpus = os.cpus();
const machine = {
  cpu: cpus[0]?.model?.trim() ?? "unknown",
  cores: cpus.length,
  node: process.version,
  v8: process.versions.v8,
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  memory: os.totalmem(),
  loadavg: os.loadavg(),
};
console.log("flashllm kernel microbenchmark: matvec");
console.log(`machine  ${machine.cpu} (${machine.cores} logical cores), ${machine.os}, ${fmtMB(machine.memory)} RAM`);
console.log(`node     ${machine.node} (V8 ${machine.v8})${globalThis.gc ? "" : "  [run with --expose-gc to collect between sizes]"}`);
console.log(`load     ${machine.loadavg.map((v) => v.toFixed(2)).join(" ")} (1/5/15 min) at start`);
console.log(
  `mode     ${opts.quick ? "quick" : "full"}: ~${BUDGET_S}s timed per variant, ${MIN_SAMPLES}-${MAX_SAMPLES} samples, ` +
    `median time per call after warm-up`,
);
console.log(
  "columns  range = (slowest − fastest sample) / median; GFLOP/s = 2·rows·cols / time; GB/s = weight bytes / time (f32: 4·rows·cols, q8: rows·cols + 4·rows); " +
    "err = max|out−ref|/max|ref|",
);
console.log("");

const t0 = performance.now();
const kernels = await Kernels.load();
const k = kernels.k;
const heapBase = kernels.heapUsed;

// Global warm-up: V8 first compiles WASM with its baseline compiler and tiers hot functions up to
// the optimizing one in the background; run every kernel on a small problem first so the first
// timed size does not measure that transition.
{
  const [r, c] = [256, 256];
  const bW = kernels.alloc(4 * r * c);
  const bX = kernels.alloc(4 * c);
  const bO = kernels.alloc(4 * c);
  const bXq = kernels.alloc(2 * c);
  const w = kernels.f32(bW.ptr, r * c);
  fillRandom(w, 7);
  fillRandom(kernels.f32(bX.ptr, c), 8);
  const x = kernels.f32(bX.ptr, c);
  const o = kernels.f32(bO.ptr, r);
  const end = performance.now() + (opts.quick ? 100 : 200);
  while (performance.now() < end) {
    k.matvec_f32_scalar(bO.ptr, bW.ptr, bX.ptr, r, c);
    k.matvec_f32(bO.ptr, bW.ptr, bX.ptr, r, c);
    k.matvec_q8(bO.ptr, bW.ptr, bX.ptr, bX.ptr, bXq.ptr, r, c); // any bytes are valid i8 weights
    k.matvec_t_f32(bO.ptr, bW.ptr, bX.ptr, r, c);
    matvecJs(o, w, x, r, c);
  }
  for (const b of [bW, bX, bO, bXq]) kernels.free(b);
}

const VARIANTS = [
  { id: "scalar", label: "wasm scalar f32" },
  { id: "simd", label: "wasm simd f32" },
  { id: "js", label: "js f32 loop" },
  { id: "q8", label: "wasm q8" },
  { id: "t", label: "wasm simd f32ᵀ (t)" },
];
const W = { size: 13, kernel: 20, time: 11, range: 6, gflops: 8, gbs: 8, reps: 9, err: 9, check: 5 };
const rule = "─".repeat(Object.values(W).reduce((a, b) => a + b, 0) + Object.keys(W).length * 2 - 2);
console.log(
  [
    pad("size", W.size),
    pad("kernel", W.kernel),
    lpad("time/call", W.time),
    lpad("range", W.range),
    lpad("GFLOP/s", W.gflops),
    lpad("GB/s", W.gbs),
    lpad("samp×n", W.reps),
    lpad("err", W.err),
    pad("check", W.check),
  ].join("  "),
);
console.log(rule);

const results = [];
let failures = 0;

for (const [rows, cols] of SIZES) {
  const n = rows * cols;
  const flops = 2 * n;
  const bytesF32 = 4 * n;
  const bytesQ8 = n + 4 * rows;
  const vlen = Math.max(rows, cols);
  const xqLen = Math.ceil(cols / 8) * 8;

  // Allocate everything first: memory growth detaches typed-array views, so views come after.
  const blocks = [];
  const alloc = (bytes) => {
    const b = kernels.alloc(bytes, 16);
    blocks.push(b);
    return b;
  };
  const bW = alloc(bytesF32);
  const bWq = alloc(n);
  const bScales = alloc(4 * rows);
  const bX = alloc(4 * vlen);
  const bXq = alloc(2 * xqLen);
  const bOut = {};
  for (const v of VARIANTS) bOut[v.id] = alloc(4 * vlen);

  const w = kernels.f32(bW.ptr, n);
  const wq = kernels.i8(bWq.ptr, n);
  const scales = kernels.f32(bScales.ptr, rows);
  const x = kernels.f32(bX.ptr, vlen);
  const out = {};
  for (const v of VARIANTS) out[v.id] = kernels.f32(bOut[v.id].ptr, v.id === "t" ? cols : rows);

  fillRandom(w, 0x12345 + rows * 31 + cols);
  fillRandom(x, 0xabcdef + rows + cols * 17);
  // q8 copy of the same weights: |w| < 1, one scale 1/127 per row.
  for (let i = 0; i < n; i++) wq[i] = Math.round(w[i] * 127);
  scales.fill(1 / 127);

  const xT = x.subarray(0, rows); // matvec_t_f32 reads `rows` entries of x
  const xN = x.subarray(0, cols);
  const run = {
    scalar: () => k.matvec_f32_scalar(bOut.scalar.ptr, bW.ptr, bX.ptr, rows, cols),
    simd: () => k.matvec_f32(bOut.simd.ptr, bW.ptr, bX.ptr, rows, cols),
    js: () => matvecJs(out.js, w, xN, rows, cols),
    q8: () => k.matvec_q8(bOut.q8.ptr, bWq.ptr, bScales.ptr, bX.ptr, bXq.ptr, rows, cols),
    t: () => k.matvec_t_f32(bOut.t.ptr, bW.ptr, bX.ptr, rows, cols),
  };

  // Correctness, once per size, before any timing.
  for (const v of VARIANTS) {
    out[v.id].fill(NaN);
    run[v.id]();
  }
  const ref = out.scalar;
  const refT = matvecTRef(w, xT, rows, cols);
  const errs = {
    scalar: 0,
    simd: relErr(out.simd, ref),
    js: relErr(out.js, ref),
    q8: relErr(out.q8, ref),
    t: relErr(out.t, refT),
  };
  // The scalar kernel is the reference for the others; check it too, against the f64 JS loop.
  errs.scalar = relErr(ref, out.js);
  const tol = { scalar: TOL_F32, simd: TOL_F32, js: TOL_F32, q8: TOL_Q8, t: TOL_F32 };

  const sizeRes = { rows, cols, flops, bytesF32, bytesQ8, variants: {} };
  for (const v of VARIANTS) {
    const ok = errs[v.id] <= tol[v.id];
    const bytes = v.id === "q8" ? bytesQ8 : bytesF32;
    let r = { ok, err: errs[v.id], tol: tol[v.id] };
    if (ok) {
      const tm = timeIt(run[v.id]);
      r = { ...r, ...tm, gflops: flops / tm.median / 1e9, gbs: bytes / tm.median / 1e9 };
    } else {
      failures++;
    }
    sizeRes.variants[v.id] = r;
    console.log(
      [
        pad(v === VARIANTS[0] ? `${rows}×${cols}` : "", W.size),
        pad(v.label, W.kernel),
        lpad(ok ? fmtTime(r.median) : "—", W.time),
        lpad(ok ? `${Math.round((100 * (r.max - r.min)) / r.median)}%` : "—", W.range),
        lpad(ok ? fmtNum(r.gflops) : "—", W.gflops),
        lpad(ok ? fmtNum(r.gbs) : "—", W.gbs),
        lpad(ok ? `${r.samples}×${r.inner}` : "—", W.reps),
        lpad(errs[v.id].toExponential(1), W.err),
        pad(ok ? "ok" : "FAIL", W.check),
      ].join("  "),
    );
  }
  const V = sizeRes.variants;
  const ratio = (a, b) => (V[a].ok && V[b].ok ? V[a].median / V[b].median : null);
  // Speed-ups: `a_vs_b` = time(b) / time(a), > 1 when a is faster.
  sizeRes.ratios = {
    simd_vs_scalar: ratio("scalar", "simd"),
    simd_vs_js: ratio("js", "simd"),
    q8_vs_f32: ratio("simd", "q8"),
    t_vs_f32: ratio("simd", "t"),
  };
  const R = sizeRes.ratios;
  console.log(
    `${pad("", W.size)}  speed-up: simd/scalar ${fmtRatio(R.simd_vs_scalar)}, simd/js ${fmtRatio(R.simd_vs_js)}, ` +
      `q8/f32 ${fmtRatio(R.q8_vs_f32)}   (weights ${fmtMB(bytesF32)} f32, ${fmtMB(bytesQ8)} q8)`,
  );
  console.log(rule);
  results.push(sizeRes);

  for (const b of blocks) kernels.free(b);
  gc();
}

const heapLeak = kernels.heapUsed - heapBase;
const totalS = (performance.now() - t0) / 1e3;

// Summary of the ratios (speed-ups: how many times faster the first is than the second).
console.log("");
console.log("speed-ups (time of the slower ÷ time of the faster; >1 means the first one is faster)");
const S = { size: 13, c: 13 };
console.log(
  [pad("size", S.size), lpad("simd/scalar", S.c), lpad("simd/js", S.c), lpad("q8/f32 simd", S.c), lpad("f32ᵀ/f32", S.c)].join("  "),
);
for (const r of results) {
  const R = r.ratios;
  console.log(
    [
      pad(`${r.rows}×${r.cols}`, S.size),
      lpad(fmtRatio(R.simd_vs_scalar), S.c),
      lpad(fmtRatio(R.simd_vs_js), S.c),
      lpad(fmtRatio(R.q8_vs_f32), S.c),
      lpad(fmtRatio(R.t_vs_f32), S.c),
    ].join("  "),
  );
}
console.log("");
console.log(
  `wasm memory ${fmtMB(kernels.memoryBytes)} (peak, linear memory never shrinks); heap after freeing: ` +
    `${heapLeak === 0 ? "0 bytes leaked" : `${heapLeak} bytes LEAKED`}; total ${totalS.toFixed(1)} s`,
);
if (failures) console.log(`${failures} correctness check(s) FAILED: those variants were not timed`);

if (opts.json) {
  const doc = {
    benchmark: "flashllm kernels: matvec",
    date: new Date().toISOString(),
    mode: opts.quick ? "quick" : "full",
    machine,
    settings: { budgetSeconds: BUDGET_S, warmupSeconds: WARMUP_S, minSamples: MIN_SAMPLES, maxSamples: MAX_SAMPLES },
    units: {
      ratios: "speed-ups: a_vs_b = time(b) / time(a), > 1 when a is faster (q8/t compared with wasm simd f32)",
      time: "seconds per call", gflops: "1e9 flop/s, 2·rows·cols flops", gbs: "1e9 bytes/s of weights read" },
    tolerances: { f32: TOL_F32, q8: TOL_Q8, metric: "max|out-ref|/max|ref|" },
    variants: Object.fromEntries(VARIANTS.map((v) => [v.id, v.label])),
    results,
    wasmMemoryBytes: kernels.memoryBytes,
    heapLeakBytes: heapLeak,
    totalSeconds: totalS,
    failures,
  };
  writeFileSync(opts.json, JSON.stringify(doc, null, 2) + "\n");
  console.log(`wrote ${opts.json}`);
}

if (failures || heapLeak !== 0) process.exitCode = 1;
