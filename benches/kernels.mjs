// Kernel microbenchmark: every weight type's matvec, ffn_bundled over sparse bundles, and CRC-32,
// each against a plain memory-read floor measured in the same run over the same bytes.
//
//   node --expose-gc benches/kernels.mjs [--quick] [--json out.json]
//
// Matvecs (rows×cols, for 4096×4096 and 4096×11008): wasm scalar f32 (one accumulator, no SIMD),
// f32 SIMD, q8 (int8 + f32 scale per row), q8_0, q4_0 (ggml blocks) and f16. ffn_bundled: a Llama-2-7B
// FFN layer (dim 4096, 11008 neurons, gated SiLU), ~10% of the neurons active, at random slots of a
// slot matrix holding half the layer, in f32, q8 and q4_0. CRC-32: the WASM kernel against the JS one.
//
// Figures: median (and best) time per call after warm-up, as CPU time of this process
// (process.cpuUsage: time other processes on a shared machine take from these cores does not count;
// wall-clock figures go to the JSON too); GB/s = weight bytes read / time (f32 4 B,
// f16 2 B, q8 1 B + 4 B per row, q8_0 34 B and q4_0 18 B per 32 values; bundles: the active bundles'
// bytes); GFLOP/s = 2 flops per weight; "floor" = the same bytes summed by `read_floor` (4 vector
// accumulators, nothing else), and each kernel's GB/s as a % of it.
//
// Every kernel's output is checked BEFORE it is timed, as max|out − ref| / max|ref| against a float64
// reference over the values the kernel sees (decoded halves, dequantized blocks): f32/f16 ≤ 1e-4,
// int8 / block kernels (which also quantize x) ≤ 1e-2. A failing kernel gets no figures and the
// process exits with code 1.

import os from "node:os";
import { writeFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Kernels, crc32 } from "../packages/sdk/dist/internal.js";
import { fillRandom } from "./random.mjs";

const argv = process.argv.slice(2);
const opts = { quick: false, json: null };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--quick") opts.quick = true;
  else if (a === "--json") opts.json = argv[++i] ?? usage("--json needs a file name");
  else if (a.startsWith("--json=")) opts.json = a.slice(7);
  else if (a === "--help" || a === "-h") usage();
  else usage(`unknown argument ${a}`);
}
function usage(err) {
  if (err) console.error(`kernels.mjs: ${err}`);
  console.error("usage: node --expose-gc benches/kernels.mjs [--quick] [--json out.json]");
  process.exit(err ? 2 : 0);
}

const SIZES = opts.quick ? [[4096, 4096]] : [[4096, 4096], [4096, 11008]];
const FFN = opts.quick ? { dim: 4096, hidden: 4096 } : { dim: 4096, hidden: 11008 };
const ACTIVE = 0.1;
const BUDGET_S = opts.quick ? 0.1 : 0.4;
const MAX_SAMPLES = opts.quick ? 9 : 21;
const gc = () => globalThis.gc?.();

// ---------------------------------------------------------------------------------------------
// Helpers

const f32b = new Float32Array(1), u32b = new Uint32Array(f32b.buffer);
/** f32 → IEEE half, round to nearest even (normal range and zero suffice for benchmark data). */
function toHalf(v) {
  f32b[0] = v;
  const b = u32b[0], sign = (b >>> 16) & 0x8000, e = ((b >>> 23) & 255) - 112;
  if (e <= 0) return sign;
  let h = (e << 10) | ((b >>> 13) & 1023);
  const rest = b & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return sign | h;
}
function fromHalf(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

/** ggml blocks of one row `v` into `out` at `at` (values dequantized into `deq` at `dat`). */
function quantizeBlocks(type, v, out, at, deq, dat) {
  const bb = type === "q8_0" ? 34 : 18;
  for (let b = 0; b < v.length / 32; b++) {
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) {
      const x = v[32 * b + j];
      if (Math.abs(x) > amax) { amax = Math.abs(x); max = x; }
    }
    // q8_0 as ggml (d = amax/127); q4_0 as ggml (d = max/−8, q = x/d + 8.5 truncated, clamped to 15)
    const h = toHalf(type === "q8_0" ? amax / 127 : max / -8);
    const d = fromHalf(h), id = d ? 1 / d : 0;
    const o = at + b * bb;
    out[o] = h & 255;
    out[o + 1] = h >> 8;
    for (let j = 0; j < 32; j++) {
      const x = v[32 * b + j];
      if (type === "q8_0") {
        const q = Math.max(-127, Math.min(127, Math.round(x * id)));
        out[o + 2 + j] = q & 255;
        deq[dat + 32 * b + j] = d * q;
      } else {
        const q = Math.min(15, Math.trunc(x * id + 8.5));
        if (j < 16) out[o + 2 + j] = q; else out[o + 2 + j - 16] |= q << 4;
        deq[dat + 32 * b + j] = d * (q - 8);
      }
    }
  }
}

/** max|a−b| / max|b|; NaN anywhere gives Infinity. */
function relErr(a, b) {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= num)) num = d;
    den = Math.max(den, Math.abs(b[i]));
  }
  return Number.isFinite(num) ? (den > 0 ? num / den : num) : Infinity;
}

/** Warm-up, then samples of `inner` calls each; seconds per call (median, min). */
function timeIt(fn) {
  const w0 = performance.now();
  let calls = 0;
  while (calls < 2 || performance.now() - w0 < 40) { fn(); calls++; }
  const t1 = performance.now();
  fn();
  const est = Math.max((performance.now() - t1) / 1e3, 1e-8);
  const total = Math.max(1, Math.floor(BUDGET_S / est));
  const samples = Math.max(3, Math.min(MAX_SAMPLES, total));
  const inner = Math.max(1, Math.round(total / samples));
  const per = [], wall = [];
  for (let s = 0; s < samples; s++) {
    const t = performance.now(), c = process.cpuUsage();
    for (let k = 0; k < inner; k++) fn();
    const u = process.cpuUsage(c);
    wall.push((performance.now() - t) / 1e3 / inner);
    per.push((u.user + u.system) / 1e6 / inner);
  }
  per.sort((a, b) => a - b);
  wall.sort((a, b) => a - b);
  return { median: per[per.length >> 1], min: per[0], wallMedian: wall[wall.length >> 1], wallMin: wall[0], samples, inner };
}

const fmt = (v, d = 2) => (v == null || !Number.isFinite(v) ? "—" : v.toFixed(d));
const fmtTime = (s) => (s < 1e-3 ? `${(s * 1e6).toFixed(1)} µs` : `${(s * 1e3).toFixed(2)} ms`);
const fmtMB = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const loadavg = () => os.loadavg().map((v) => v.toFixed(2)).join(" ");

// ---------------------------------------------------------------------------------------------
// Header

const cpus = os.cpus();
const machine = {
  cpu: cpus[0]?.model?.trim() ?? "unknown", cores: cpus.length, node: process.version,
  os: `${os.type()} ${os.release()} ${os.arch()}`, memory: os.totalmem(), loadavgStart: os.loadavg(),
};
console.log("flashllm kernel microbenchmark");
console.log(`machine  ${machine.cpu} (${machine.cores} logical cores), ${machine.os}, ${fmtMB(machine.memory)} RAM, node ${machine.node}`);
console.log(`load     ${loadavg()} (1/5/15 min) at start: other processes share these cores, so compare the best column on a busy machine`);
console.log(`columns  time = CPU time per call (median); GB/s = weight bytes / CPU time (median, best); GFLOP/s = 2 per weight (median); floor = read_floor over the same bytes (best); % = best kernel GB/s / best floor GB/s`);
console.log("");

const t0 = performance.now();
const kernels = await Kernels.load();
const k = kernels.k;
const heapBase = kernels.heapUsed;
const results = { matvec: [], ffn: [], crc: null };
let failures = 0;

const W = { size: 12, kernel: 18, time: 10, gbs: 14, gflops: 8, floor: 8, pct: 6, err: 9 };
const header = () =>
  console.log([pad("size", W.size), pad("kernel", W.kernel), lpad("time", W.time), lpad("GB/s med/best", W.gbs), lpad("GFLOP/s", W.gflops),
    lpad("floor", W.floor), lpad("%", W.pct), lpad("err", W.err), " check"].join("  "));
const rule = "─".repeat(110);

/** Times `run` and the floor over `spans` ([ptr, bytes] pairs), prints a row, returns the figures. */
function measure(label, sizeLabel, run, spans, bytes, flops, err, tol) {
  const ok = err <= tol;
  let r = { label, ok, err, tol, bytes, flops };
  if (ok) {
    const tm = timeIt(run);
    const fl = timeIt(() => { for (const [p, n] of spans) k.read_floor(p, n); });
    r = { ...r, ...tm, gbs: bytes / tm.median / 1e9, gbsBest: bytes / tm.min / 1e9, gflops: flops / tm.median / 1e9,
      floorGbs: bytes / fl.min / 1e9 };
    r.pctOfFloor = (100 * r.gbsBest) / r.floorGbs;
  } else failures++;
  console.log([pad(sizeLabel, W.size), pad(label, W.kernel), lpad(ok ? fmtTime(r.median) : "—", W.time),
    lpad(ok ? `${fmt(r.gbs)} / ${fmt(r.gbsBest)}` : "—", W.gbs), lpad(ok ? fmt(r.gflops) : "—", W.gflops),
    lpad(ok ? fmt(r.floorGbs) : "—", W.floor), lpad(ok ? `${Math.round(r.pctOfFloor)}%` : "—", W.pct),
    lpad(err.toExponential(1), W.err), ok ? " ok" : " FAIL"].join("  "));
  return r;
}

// ---------------------------------------------------------------------------------------------
// Matvecs

header();
console.log(rule);
for (const [rows, cols] of SIZES) {
  const n = rows * cols;
  const sizeLabel = `${rows}×${cols}`;
  const blocks = [];
  const alloc = (bytes) => { const b = kernels.alloc(bytes, 64); blocks.push(b); return b; };
  const bW = alloc(4 * n), bQ8 = alloc(n), bS = alloc(4 * rows), bF16 = alloc(2 * n);
  const bQ80 = alloc((n / 32) * 34), bQ40 = alloc((n / 32) * 18);
  const bX = alloc(4 * cols), bXq = alloc((cols + 8) * 2), bOut = alloc(4 * rows);
  const w = kernels.f32(bW.ptr, n);
  fillRandom(w, 0x12345 + rows * 31 + cols);
  for (let i = 0; i < n; i++) w[i] *= 0.05; // weight-like magnitudes (f16 normals, realistic scales)
  const x = kernels.f32(bX.ptr, cols);
  fillRandom(x, 0xabcdef + cols);

  // the same weights in every type, and what each kernel sees
  const seen = {};
  {
    const q8 = kernels.i8(bQ8.ptr, n), sc = kernels.f32(bS.ptr, rows), d = new Float32Array(n);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
      sc[r] = m / 127;
      for (let c = 0; c < cols; c++) { const q = Math.round(w[r * cols + c] / sc[r]); q8[r * cols + c] = q; d[r * cols + c] = q * sc[r]; }
    }
    seen.q8 = d;
    const h = new Uint16Array(kernels.k.memory.buffer, bF16.ptr, n), dh = new Float32Array(n);
    for (let i = 0; i < n; i++) { h[i] = toHalf(w[i]); dh[i] = fromHalf(h[i]); }
    seen.f16 = dh;
    for (const [type, b] of [["q8_0", bQ80], ["q4_0", bQ40]]) {
      const out = kernels.u8(b.ptr, (n / 32) * (type === "q8_0" ? 34 : 18)), dq = new Float32Array(n);
      for (let r = 0; r < rows; r++) quantizeBlocks(type, w.subarray(r * cols, (r + 1) * cols), out, r * (cols / 32) * (type === "q8_0" ? 34 : 18), dq, r * cols);
      seen[type] = dq;
    }
    seen.f32 = w;
    seen.scalar = w;
  }
  const ref = (vals) => {
    const o = new Float64Array(rows);
    for (let r = 0; r < rows; r++) { let s = 0; for (let c = 0; c < cols; c++) s += vals[r * cols + c] * x[c]; o[r] = s; }
    return o;
  };
  const variants = [
    ["scalar", "wasm scalar f32", () => k.matvec_f32_scalar(bOut.ptr, bW.ptr, bX.ptr, rows, cols), bW, 4 * n, 1e-4],
    ["f32", "f32 simd", () => k.matvec_f32(bOut.ptr, bW.ptr, bX.ptr, rows, cols), bW, 4 * n, 1e-4],
    ["q8", "q8 (per row)", () => k.matvec_q8(bOut.ptr, bQ8.ptr, bS.ptr, bX.ptr, bXq.ptr, rows, cols), bQ8, n + 4 * rows, 1e-2],
    ["q8_0", "q8_0", () => k.matvec_q8_0(bOut.ptr, bQ80.ptr, bX.ptr, bXq.ptr, rows, cols), bQ80, (n / 32) * 34, 1e-2],
    ["q4_0", "q4_0", () => k.matvec_q4_0(bOut.ptr, bQ40.ptr, bX.ptr, bXq.ptr, rows, cols), bQ40, (n / 32) * 18, 1e-2],
    ["f16", "f16", () => k.matvec_f16(bOut.ptr, bF16.ptr, bX.ptr, rows, cols), bF16, 2 * n, 1e-4],
  ];
  const row = { rows, cols, kernels: {} };
  for (const [id, label, run, buf, bytes, tol] of variants) {
    kernels.f32(bOut.ptr, rows).fill(NaN);
    run();
    const err = relErr(kernels.f32(bOut.ptr, rows), ref(seen[id]));
    row.kernels[id] = measure(label, id === "scalar" ? sizeLabel : "", run, [[buf.ptr, bytes]], bytes, 2 * n, err, tol);
  }
  const K = row.kernels;
  if (K.q8.ok && K.q4_0.ok) console.log(`${pad("", W.size)}  q4_0 moves ${fmt(K.q4_0.gbsBest / K.q8.gbsBest)}× the weight bytes/s of q8; simd/scalar f32 ${fmt(K.scalar.median / K.f32.median)}×`);
  console.log(rule);
  results.matvec.push(row);
  for (const b of blocks) kernels.free(b);
  gc();
}

// ---------------------------------------------------------------------------------------------
// ffn_bundled: ~10% of a 7B layer's neurons at random slots

{
  const { dim, hidden } = FFN;
  const capacity = hidden >> 1;
  const active = Math.round(ACTIVE * hidden);
  const sizeLabel = `${dim}×${hidden}`;
  console.log(`ffn_bundled: dim ${dim}, ${hidden} neurons, gated SiLU, ${active} active (${ACTIVE * 100}%) at random slots of a ${capacity}-slot matrix`);
  // random distinct slots
  const perm = Uint32Array.from({ length: capacity }, (_, i) => i);
  let s = 0x5eed;
  for (let i = capacity - 1; i > 0; i--) { s = (s * 1103515245 + 12345) >>> 0; const j = s % (i + 1); [perm[i], perm[j]] = [perm[j], perm[i]]; }
  const slots = perm.subarray(0, active);
  for (const type of ["f32", "q8", "q4_0"]) {
    const rowB = type === "f32" ? 4 * dim : type === "q8" ? dim : (dim / 32) * 18;
    const bundleBytes = 16 + 3 * rowB, stride = Math.ceil(bundleBytes / 64) * 64;
    const bSlots = kernels.alloc(stride * capacity, 4096);
    const bX = kernels.alloc(4 * dim), bIds = kernels.alloc(4 * active), bOut = kernels.alloc(4 * dim), bXq = kernels.alloc((dim + 8) * 2);
    const x = kernels.f32(bX.ptr, dim);
    fillRandom(x, 77);
    kernels.u32(bIds.ptr, active).set(slots);
    // fill only the active slots (the others are never read), keeping the values each kernel sees
    const v = new Float32Array(dim), vals = [];
    for (let a = 0; a < active; a++) {
      const base = slots[a] * stride;
      const seenRows = [];
      const hdr = kernels.f32(bSlots.ptr + base, 4);
      hdr.set([0, 0, 0, 0]);
      for (let r = 0; r < 3; r++) {
        fillRandom(v, 1000 + a * 3 + r);
        for (let i = 0; i < dim; i++) v[i] *= 0.05;
        const at = bSlots.ptr + base + 16 + r * rowB;
        const d = new Float32Array(dim);
        if (type === "f32") { kernels.f32(at, dim).set(v); d.set(v); }
        else if (type === "q8") {
          let m = 0;
          for (let i = 0; i < dim; i++) m = Math.max(m, Math.abs(v[i]));
          const sc = Math.fround(m / 127);
          kernels.f32(bSlots.ptr + base + 4 * r, 1)[0] = sc;
          const q = kernels.i8(at, dim);
          for (let i = 0; i < dim; i++) { q[i] = Math.round(v[i] / sc); d[i] = q[i] * sc; }
        } else quantizeBlocks("q4_0", v, kernels.u8(at, rowB), 0, d, 0);
        seenRows.push(d);
      }
      vals.push(seenRows);
    }
    const dtype = { f32: 0, q8: 1, q4_0: 4 }[type];
    const run = () => k.ffn_bundled(bOut.ptr, bX.ptr, dim, bSlots.ptr, stride, bIds.ptr, active, dtype, 1, 1, bXq.ptr, 0, 0, 0);
    run();
    const want = new Float64Array(dim);
    for (const [g, u, d] of vals) {
      let gs = 0, us = 0;
      for (let i = 0; i < dim; i++) { gs += g[i] * x[i]; us += u[i] * x[i]; }
      const h = (gs / (1 + Math.exp(-gs))) * us;
      for (let i = 0; i < dim; i++) want[i] += h * d[i];
    }
    const err = relErr(kernels.f32(bOut.ptr, dim), want);
    const spans = Array.from(slots, (sl) => [bSlots.ptr + sl * stride, bundleBytes - (bundleBytes % 4)]);
    const r = measure(`bundled ${type}`, type === "f32" ? sizeLabel : "", run, spans, active * bundleBytes, 6 * dim * active, err, type === "f32" ? 1e-4 : 1e-2);
    results.ffn.push({ type, dim, hidden, active, capacity, bundleBytes, ...r });
    for (const b of [bSlots, bX, bIds, bOut, bXq]) kernels.free(b);
    gc();
  }
  console.log(rule);
}

// ---------------------------------------------------------------------------------------------
// CRC-32: the WASM kernel against the JS one (format/crc32.ts), 64 MiB

{
  const n = opts.quick ? 16 << 20 : 64 << 20;
  const b = kernels.alloc(n, 64);
  const bytes = kernels.u8(b.ptr, n);
  for (let i = 0; i < n; i += 4) bytes[i] = (i * 2654435761) >>> 24;
  const wasm = k.crc32(b.ptr, n, 0) >>> 0, js = crc32(bytes);
  const ok = wasm === js;
  if (!ok) failures++;
  const tw = ok ? timeIt(() => k.crc32(b.ptr, n, 0)) : null;
  const tj = ok ? timeIt(() => crc32(bytes)) : null;
  const fl = timeIt(() => k.read_floor(b.ptr, n));
  results.crc = ok ? { bytes: n, wasmGbs: n / tw.min / 1e9, wasmGbsMedian: n / tw.median / 1e9, jsGbs: n / tj.min / 1e9, jsGbsMedian: n / tj.median / 1e9, floorGbs: n / fl.min / 1e9 } : { ok };
  if (ok) {
    const c = results.crc;
    console.log(`crc32 ${fmtMB(n)}: wasm ${fmt(c.wasmGbsMedian)} / ${fmt(c.wasmGbs)} GB/s (median/best), js ${fmt(c.jsGbsMedian)} / ${fmt(c.jsGbs)} GB/s: ` +
      `wasm ${fmt(c.wasmGbs / c.jsGbs)}× js; ${Math.round((100 * c.wasmGbs) / c.floorGbs)}% of the read floor (${fmt(c.floorGbs)} GB/s)`);
  } else console.log(`crc32: wasm ${wasm.toString(16)} != js ${js.toString(16)}: FAIL`);
  kernels.free(b);
}

const heapLeak = kernels.heapUsed - heapBase;
const totalS = (performance.now() - t0) / 1e3;
machine.loadavgEnd = os.loadavg();
console.log("");
console.log(`load     ${loadavg()} (1/5/15 min) at end; wasm memory ${fmtMB(kernels.memoryBytes)} (peak); ` +
  `${heapLeak === 0 ? "0 bytes leaked" : `${heapLeak} bytes LEAKED`}; total ${totalS.toFixed(1)} s`);
if (failures) console.log(`${failures} correctness check(s) FAILED: those kernels were not timed`);

if (opts.json) {
  writeFileSync(opts.json, JSON.stringify({ benchmark: "flashllm kernels", date: new Date().toISOString(), mode: opts.quick ? "quick" : "full",
    machine, settings: { budgetSeconds: BUDGET_S, maxSamples: MAX_SAMPLES, active: ACTIVE }, results, heapLeakBytes: heapLeak, totalSeconds: totalS, failures }, null, 2) + "\n");
  console.log(`wrote ${opts.json}`);
}
if (failures || heapLeak !== 0) process.exitCode = 1;
