// Where one token's compute goes, measured in CPU time: every kernel call of the forward pass is
// timed (process.cpuUsage around it) and attributed by what it computes, with the weight bytes it
// touched; the selector is timed the same way; "JS between calls" is the rest of the token's CPU time
// minus I/O wait and memory management as the flash FFN counts them. Prints figures; asserts nothing.
//
//   node benches/token-profile.mjs --model FILE [--budget 50%] [--tokens 8] [--warmup 6] [--trace opt-6.7b-paper] [--wasm K.wasm]
//
// --wasm runs another build of the kernels (e.g. an older one, for an A/B in the model).
//
// The model is opened as `flashllm bench` opens it for "windowed + bundled" (O_DIRECT, trace
// selector, window 5). CPU time is the process's (all threads): during a kernel call the read
// threads are idle in this variant (reads complete before a layer's FFN compute starts).

import os from "node:os";
import { readFileSync, statSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Kernels, TRACE_PRESETS, TraceSelector, openFlashModel, openFlm } from "../packages/sdk/dist/internal.js";
import { NodeFileSource, parseBudget } from "../packages/node-io/dist/index.js";

const args = process.argv.slice(2);
const o = { model: null, budget: "50%", tokens: 8, warmup: 6, trace: "opt-6.7b-paper", window: 5, wasm: null };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const v = () => args[++i];
  if (a === "--model") o.model = v();
  else if (a === "--budget") o.budget = v();
  else if (a === "--tokens") o.tokens = Number(v());
  else if (a === "--warmup") o.warmup = Number(v());
  else if (a === "--trace") o.trace = v();
  else if (a === "--wasm") o.wasm = v();
  else {
    console.error(`token-profile.mjs: unknown argument ${a}`);
    process.exit(2);
  }
}
if (!o.model) {
  console.error("usage: node benches/token-profile.mjs --model FILE [--budget 50%] [--tokens 8] [--warmup 6]");
  process.exit(2);
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e3; // ms
};

// Per category: CPU ms, calls, weight bytes.
const acc = new Map();
let measuring = false;
const add = (cat, ms, bytes) => {
  if (!measuring) return;
  const a = acc.get(cat) ?? { ms: 0, calls: 0, bytes: 0 };
  a.ms += ms;
  a.calls++;
  a.bytes += bytes;
  acc.set(cat, a);
};

const kernels = await Kernels.load(o.wasm ? readFileSync(o.wasm) : undefined);
const raw = kernels.k;
let vocab = 0;
let bundleBytes = 0;
/** The weight bytes a call reads, and its category. */
const describe = {
  matvec_q8: (a) => [a[5] === vocab ? "classifier (matvec_q8)" : "attention q/k/v/o (matvec_q8)", a[5] * a[6] + 4 * a[5]],
  matvec_f32: (a) => [a[3] === vocab ? "classifier (matvec_f32)" : "matvec_f32", 4 * a[3] * a[4]],
  ffn_bundled: (a) => ["FFN: ffn_bundled (gate/up dots + down columns)", a[6] * bundleBytes],
  attention: () => ["attention over the KV cache", 0],
};
const wrapped = {};
for (const [name, fn] of Object.entries(raw)) {
  if (typeof fn !== "function") {
    wrapped[name] = fn;
    continue;
  }
  const d = describe[name];
  const skip = name === "fl_alloc" || name === "fl_free" || name === "fl_heap_used";
  wrapped[name] = skip
    ? fn
    : (...a) => {
        const t = cpuNow();
        const r = fn(...a);
        const ms = cpuNow() - t;
        const [cat, bytes] = d ? d(a) : [`other kernels (${name})`, 0];
        add(cat, ms, bytes);
        return r;
      };
}
kernels.k = wrapped;

const fileBytes = statSync(o.model).size;
const budget = parseBudget(o.budget, fileBytes);
const source = await NodeFileSource.open(o.model, { direct: true, maxInFlight: 32 });
const c = (await openFlm(source)).manifest.config;
vocab = c.vocabSize;
const preset = TRACE_PRESETS[o.trace];
const trace = new TraceSelector(c.hiddenDim, c.nLayers, { activeFraction: preset.activeFraction, overlap: preset.overlap, skew: preset.skew, seed: 1 }, "trace");
const select = trace.select.bind(trace);
trace.select = (layer, x, out) => {
  const t = cpuNow();
  const n = select(layer, x, out);
  add("selector (trace)", cpuNow() - t, 0);
  return n;
};
const t0 = performance.now();
const model = await openFlashModel(source, {
  kernels, memoryBudget: budget, contextLength: o.warmup + o.tokens + 2, strategy: "windowed", window: o.window, selector: trace, workers: 1,
});
const openS = (performance.now() - t0) / 1e3;
bundleBytes = model.flash.layout?.bundleBytes ?? 16 + 3 * c.dim;
const t = model.transformer;
const ids = Array.from({ length: o.warmup + o.tokens }, (_, i) => 1 + ((i * 7919) % (c.vocabSize - 1)));
let pos = 0;
for (; pos < o.warmup; pos++) await t.forward(ids[pos], pos);
const s0 = { ...model.flash.stats };
measuring = true;
const w0 = performance.now();
const c0 = cpuNow();
const u0 = process.cpuUsage();
for (let i = 0; i < o.tokens; i++, pos++) await t.forward(ids[pos], pos);
const cpuMs = (cpuNow() - c0) / o.tokens;
const u1 = process.cpuUsage(u0);
const wallMs = (performance.now() - w0) / o.tokens;
measuring = false;
const s = model.flash.stats;
const ioMs = (s.ioMs - s0.ioMs) / o.tokens;
const memMs = (s.memoryMs - s0.memoryMs) / o.tokens;

console.log(`token profile: ${o.model}${o.wasm ? ` (kernels ${o.wasm})` : ""}, dim ${c.dim}, FFN ${c.hiddenDim}, ${c.nLayers} layers, vocab ${c.vocabSize}; budget ${o.budget}, trace ${o.trace}, windowed+bundled, O_DIRECT`);
console.log(`opened in ${openS.toFixed(1)} s; ${o.warmup} warm-up + ${o.tokens} measured tokens; load ${os.loadavg().map((v) => v.toFixed(2)).join(" ")}`);
console.log(`per token: wall ${wallMs.toFixed(1)} ms (I/O wait ${ioMs.toFixed(1)}, memory management ${memMs.toFixed(1)}), CPU ${cpuMs.toFixed(1)} ms (all threads; user ${(u1.user / 1e3 / o.tokens).toFixed(1)}, system ${(u1.system / 1e3 / o.tokens).toFixed(1)})`);
console.log("");
console.log("| part | CPU ms/token | calls/token | weight MB/token | GB/s of weights |");
console.log("| --- | ---: | ---: | ---: | ---: |");
let kernelMs = 0;
const rows = [...acc].sort((a, b) => b[1].ms - a[1].ms);
for (const [cat, a] of rows) {
  const ms = a.ms / o.tokens;
  if (!cat.startsWith("selector")) kernelMs += ms;
  const mb = a.bytes / o.tokens / 1e6;
  console.log(`| ${cat} | ${ms.toFixed(1)} | ${(a.calls / o.tokens).toFixed(0)} | ${mb ? mb.toFixed(0) : ""} | ${mb ? (a.bytes / a.ms / 1e6).toFixed(2) : ""} |`);
}
const sel = (acc.get("selector (trace)")?.ms ?? 0) / o.tokens;
console.log(`| the rest: JS between calls, memory management, the reads' CPU (syscalls, completions) | ${(cpuMs - kernelMs - sel).toFixed(1)} | | | |`);
console.log("");
console.log(`kernels ${kernelMs.toFixed(1)} ms/token of CPU; the flash FFN's own clock says compute ${((s.computeMs - s0.computeMs) / o.tokens).toFixed(1)} ms/token`);
await model.dispose();
await source.close();
