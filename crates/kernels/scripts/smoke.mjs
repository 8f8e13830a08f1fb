// Smoke test of the built module in Node:
//   node crates/kernels/scripts/smoke.mjs [path/to/flashllm_kernels.wasm]
// Checks the exports, the allocator, and a few kernels against JS. JS emulates the documented f32
// operation order with Math.fround, so matvec_f32 / matvec_t_f32 / ffn_bundled are checked
// bit for bit, not just within a tolerance.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const path = process.argv[2] ??
  fileURLToPath(new URL('../../../target/wasm32-unknown-unknown/release/flashllm_kernels.wasm', import.meta.url));
const bytes = readFileSync(path);
const module = new WebAssembly.Module(bytes);
const { exports: k } = new WebAssembly.Instance(module, {});
const f = Math.fround;
let failures = 0;
const check = (ok, what) => { if (!ok) { failures++; console.log('FAIL', what); } };

const EXPECTED = ['fl_alloc', 'fl_free', 'fl_heap_used', 'matvec_f32', 'matvec_t_f32', 'matvec_q8', 'matvec_f16', 'matvec_q8_0', 'matvec_q4_0',
  'rmsnorm', 'layernorm', 'softmax', 'silu', 'relu', 'gelu', 'mul', 'add', 'argmax', 'rope',
  'attention', 'ffn_bundled', 'matvec_f32_scalar'];
const names = WebAssembly.Module.exports(module).map((e) => e.name);
for (const e of EXPECTED) check(typeof k[e] === 'function', `export ${e}`);
check(k.memory instanceof WebAssembly.Memory, 'memory export');
console.log(`wasm: ${bytes.length} bytes; exports: ${names.join(', ')}`);

let seed = 0x2545F4914F6CDD1Dn;
const rnd = () => { // xorshift64*, uniform in [-1, 1)
  seed ^= seed >> 12n; seed ^= (seed << 25n) & 0xFFFFFFFFFFFFFFFFn; seed ^= seed >> 27n;
  const v = (seed * 0x2545F4914F6CDD1Dn) & 0xFFFFFFFFFFFFFFFFn;
  return Number(v >> 11n) / 2 ** 53 * 2 - 1;
};
const f32 = (ptr, n) => new Float32Array(k.memory.buffer, ptr, n);
const alloc = (bytes, align = 16) => { const p = k.fl_alloc(bytes, align); check(p !== 0, 'alloc'); return p; };
const randF32 = (n, scale = 1) => { const p = alloc(4 * n); const a = f32(p, n); for (let i = 0; i < n; i++) a[i] = rnd() * scale; return p; };
const bitsEq = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]) || (v === b[i]));

// THE dot, in the documented order.
function dotSpec(a, b) {
  const n = a.length, n16 = n - n % 16, n4 = n - n % 4;
  const acc = [0, 1, 2, 3].map(() => [0, 0, 0, 0]);
  for (let k0 = 0; k0 < n16; k0 += 16)
    for (let j = 0; j < 4; j++) for (let l = 0; l < 4; l++)
      acc[j][l] = f(acc[j][l] + f(a[k0 + 4 * j + l] * b[k0 + 4 * j + l]));
  const acc4 = [0, 0, 0, 0];
  for (let k0 = n16; k0 < n4; k0 += 4) for (let l = 0; l < 4; l++) acc4[l] = f(acc4[l] + f(a[k0 + l] * b[k0 + l]));
  const v = [0, 1, 2, 3].map((l) => f(f(f(acc[0][l] + acc[1][l]) + f(acc[2][l] + acc[3][l])) + acc4[l]));
  let s = f(f(v[0] + v[1]) + f(v[2] + v[3]));
  for (let i = n4; i < n; i++) s = f(s + f(a[i] * b[i]));
  return s;
}

const used0 = k.fl_heap_used();

// matvec_f32 and the scalar baseline
for (const [rows, cols] of [[1, 1], [7, 17], [33, 100], [64, 172], [300, 1000]]) {
  const w = randF32(rows * cols), x = randF32(cols), out = alloc(4 * rows), out2 = alloc(4 * rows);
  k.matvec_f32(out, w, x, rows, cols);
  k.matvec_f32_scalar(out2, w, x, rows, cols);
  const W = f32(w, rows * cols), X = f32(x, cols), O = f32(out, rows), O2 = f32(out2, rows);
  let exact = true, close = true, scalarExact = true;
  for (let i = 0; i < rows; i++) {
    const row = W.subarray(i * cols, (i + 1) * cols);
    exact &&= O[i] === dotSpec(row, X);
    let d = 0, abs = 0, seq = 0;
    for (let j = 0; j < cols; j++) { d += row[j] * X[j]; abs += Math.abs(row[j] * X[j]); seq = f(seq + f(row[j] * X[j])); }
    close &&= Math.abs(O[i] - d) <= (cols + 2) * 2 ** -23 * abs;
    scalarExact &&= O2[i] === seq;
  }
  check(exact, `matvec_f32 ${rows}x${cols} bit-exact vs JS spec order`);
  check(close, `matvec_f32 ${rows}x${cols} vs f64`);
  check(scalarExact, `matvec_f32_scalar ${rows}x${cols}`);
  [w, x, out, out2].forEach(k.fl_free);
}

// ffn_bundled (f32, gated, silu, all neurons in order) vs the dense kernels and vs JS
for (const [dim, hidden] of [[7, 3], [17, 33], [64, 172], [288, 768]]) {
  const gate = randF32(hidden * dim), up = randF32(hidden * dim), downT = randF32(hidden * dim); // downT: [hidden][dim]
  const x = randF32(dim);
  const bundleBytes = 16 + 3 * dim * 4, stride = (bundleBytes + 15) & ~15;
  const slots = alloc(stride * hidden, 4096);
  for (let i = 0; i < hidden; i++) {
    const b = f32(slots + i * stride, 4 + 3 * dim);
    b.set([1, 1, 1, 0]);
    b.set(f32(gate + 4 * i * dim, dim), 4);
    b.set(f32(up + 4 * i * dim, dim), 4 + dim);
    b.set(f32(downT + 4 * i * dim, dim), 4 + 2 * dim);
  }
  const ids = alloc(4 * hidden);
  new Uint32Array(k.memory.buffer, ids, hidden).set([...Array(hidden).keys()]);
  const out = alloc(4 * dim), hOut = alloc(4 * hidden);
  k.ffn_bundled(out, x, dim, slots, stride, ids, hidden, 0, 1, 1, 0, hOut);

  // dense path inside wasm
  const g = alloc(4 * hidden), u = alloc(4 * hidden), ref = alloc(4 * dim);
  k.matvec_f32(g, gate, x, hidden, dim);
  k.matvec_f32(u, up, x, hidden, dim);
  k.silu(g, hidden);
  k.mul(g, g, u, hidden);
  k.matvec_t_f32(ref, downT, g, hidden, dim);
  check(bitsEq(f32(out, dim), f32(ref, dim)), `ffn_bundled ${dim}x${hidden} bit-exact vs dense wasm kernels`);
  check(bitsEq(f32(hOut, hidden), f32(g, hidden)), `ffn_bundled ${dim}x${hidden} h_out`);

  // JS: the h values from the wasm dense path, the down accumulation in the documented order,
  // and an f64 reference with silu in f64
  const H = f32(g, hidden), D = f32(downT, hidden * dim), X = f32(x, dim);
  const acc = new Array(dim).fill(0), wide = new Array(dim).fill(0);
  for (let i = 0; i < hidden; i++) {
    const gi = dotSpec(f32(gate + 4 * i * dim, dim), X), ui = dotSpec(f32(up + 4 * i * dim, dim), X);
    const h64 = gi / (1 + Math.exp(-gi)) * ui;
    for (let c = 0; c < dim; c++) { acc[c] = f(acc[c] + f(H[i] * D[i * dim + c])); wide[c] += h64 * D[i * dim + c]; }
  }
  check(bitsEq(f32(out, dim), Float32Array.from(acc)), `ffn_bundled ${dim}x${hidden} bit-exact vs JS order`);
  const O = f32(out, dim);
  check(O.every((v, c) => Math.abs(v - wide[c]) <= 1e-4 * (1 + Math.abs(wide[c]))), `ffn_bundled ${dim}x${hidden} vs f64`);
  [gate, up, downT, x, slots, ids, out, hOut, g, u, ref].forEach(k.fl_free);
}

// matvec_q8 vs float reference (quantization error bound)
{
  const rows = 37, cols = 11008;
  const w = alloc(rows * cols, 16), scales = randF32(rows), x = randF32(cols), xq = alloc(2 * (cols + 7 & ~7)), out = alloc(4 * rows);
  const W = new Int8Array(k.memory.buffer, w, rows * cols);
  for (let i = 0; i < W.length; i++) W[i] = Math.floor(rnd() * 128);
  k.matvec_q8(out, w, scales, x, xq, rows, cols);
  const S = f32(scales, rows), X = f32(x, cols), O = f32(out, rows);
  const xs = X.reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 32767;
  let ok = true;
  for (let i = 0; i < rows; i++) {
    let d = 0, abs = 0;
    for (let j = 0; j < cols; j++) { d += S[i] * W[i * cols + j] * X[j]; abs += Math.abs(S[i] * W[i * cols + j]); }
    ok &&= Math.abs(O[i] - d) <= abs * xs * 0.504 + 1e-6 * abs;
  }
  check(ok, 'matvec_q8 11008 cols vs float');
  [w, scales, x, xq, out].forEach(k.fl_free);
}

// rmsnorm in place, argmax, softmax
{
  const n = 4096, x = randF32(n, 3), wt = randF32(n);
  const X0 = Float64Array.from(f32(x, n));
  k.rmsnorm(x, x, wt, n, 1e-5);
  const ms = X0.reduce((s, v) => s + v * v, 0) / n, r = 1 / Math.sqrt(ms + 1e-5), W = f32(wt, n), X = f32(x, n);
  check(X.every((v, i) => Math.abs(v - W[i] * X0[i] * r) <= 1e-5 * (1 + Math.abs(v))), 'rmsnorm in place');
  X[1234] = 100;
  check(k.argmax(x, n) === 1234, 'argmax');
  k.softmax(x, n);
  check(Math.abs(X.reduce((s, v) => s + v, 0) - 1) < 1e-5, 'softmax sums to 1');
  [x, wt].forEach(k.fl_free);
}

// allocator: big aligned blocks grow memory; everything freed returns heap_used to its start
{
  const pages0 = k.memory.buffer.byteLength / 65536;
  const ptrs = [];
  for (const [size, align] of [[50 << 20, 4096], [3 << 20, 65536], [100, 0], [1 << 20, 65536], [17, 4096]]) {
    const p = k.fl_alloc(size, align);
    check(p !== 0 && p % Math.max(align, 16) === 0, `fl_alloc(${size}, ${align}) aligned`);
    ptrs.push(p);
  }
  check(k.memory.buffer.byteLength / 65536 > pages0, 'memory grew');
  ptrs.forEach(k.fl_free);
  check(k.fl_heap_used() === used0, `heap_used back to ${used0} (is ${k.fl_heap_used()})`);
  const again = k.fl_alloc(50 << 20, 4096);
  check(k.memory.buffer.byteLength / 65536 < pages0 + 1000, 'freed memory is reused');
  k.fl_free(again);
  check(k.fl_alloc(16, 3) === 0, 'non-power-of-two alignment rejected');
}

console.log(failures === 0 ? 'smoke test: all checks passed' : `smoke test: ${failures} FAILED`);
process.exit(failures === 0 ? 0 : 1);
