// Bytes each shard reads from its source while it opens (counted by a wrapping source, not timed):
// in total, in the output projections `wo`, and the rest; for one or more files (e.g. a version-1
// file with row-major wo against a version-2 file with head-major wo) and a worker count. Shards are
// opened one after another in this process (`ShardEngine.open`, as a shard worker does), then freed.
// Also times, on this machine, rearranging one layer's head-major span into rows (what loading adds)
// against the alternative of one matvec call per head block per token. Prints figures; asserts nothing.
//
//   node benches/shard-open-bytes.mjs --workers 2 FILE [FILE…]

import os from "node:os";
import { performance } from "node:perf_hooks";
import { Kernels, ShardEngine, blocksToRows, openFlm, planShards, xqScratchBytes } from "../packages/sdk/dist/internal.js";
import { NodeFileSource } from "../packages/node-io/dist/index.js";

const args = process.argv.slice(2);
let workers = 2;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--workers") workers = Number(args[++i]);
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error("usage: node benches/shard-open-bytes.mjs --workers K FILE [FILE…]");
  process.exit(2);
}

const MiB = 2 ** 20;
const fmt = (n) => `${(n / MiB).toFixed(1)} MiB`;

/** Counts every byte asked of the inner source, except openFlm's header read at offset 0. */
class CountingSource {
  constructor(inner) {
    this.inner = inner;
    this.reads = [];
  }
  get byteLength() {
    return this.inner.byteLength;
  }
  read(requests, signal) {
    for (const r of requests) if (r.offset !== 0) this.reads.push([r.offset, r.length]);
    return this.inner.read(requests, signal);
  }
  close() {
    return this.inner.close();
  }
  total() {
    return this.reads.reduce((n, [, l]) => n + l, 0);
  }
  within(ranges) {
    let n = 0;
    for (const [o, l] of this.reads) for (const [s, e] of ranges) n += Math.max(0, Math.min(e, o + l) - Math.max(s, o));
    return n;
  }
}

console.log(`bytes read at open per shard, ${workers} workers; load ${os.loadavg().map((v) => v.toFixed(2)).join(" ")}`);
for (const path of files) {
  const probe = await NodeFileSource.open(path);
  const m = (await openFlm(probe)).manifest;
  await probe.close();
  const res = m.sections.find((s) => s.name === "resident").offset;
  const wo = m.tensors.filter((t) => /^layers\.\d+\.wo$/.test(t.name));
  const woRanges = wo.map((t) => [res + t.offset, res + t.offset + t.length]);
  const layout = wo[0]?.columnBlock ? `head-major (blocks of ${wo[0].columnBlock})` : "row-major";
  console.log(`${path}: container v${m.version}, wo ${layout}, ${wo.length} × ${fmt(wo[0]?.length ?? 0)}`);
  const slices = planShards(m.config, workers);
  let sum = 0;
  for (const slice of slices) {
    const source = new CountingSource(await NodeFileSource.open(path));
    const cfg = { slices, index: slice.index, contextLength: 8, strategy: "windowed", capacity: Math.min(slice.neurons.count, 64), stagingBytes: 256 * 1024, selector: "all" };
    const t0 = performance.now();
    const { engine } = await ShardEngine.open(source, cfg);
    const ms = performance.now() - t0;
    await engine.dispose();
    await source.close();
    const woBytes = source.within(woRanges);
    sum += source.total();
    console.log(`  shard ${slice.index} (heads ${slice.heads.first}+${slice.heads.count}): read ${fmt(source.total())} in ${source.reads.length} requests; wo ${fmt(woBytes)} (${(woBytes / wo.length / (m.config.dim * m.config.dim)).toFixed(3)} × dim² per layer), other ${fmt(source.total() - woBytes)}; open ${ms.toFixed(0)} ms`);
  }
  console.log(`  all shards: ${fmt(sum)}`);
}

// What the head-major layout costs at load, and what computing per head block would cost per token
// (7B shape: dim 4096, 32 heads of 128; a shard of K holds ceil(32/K) heads).
const k = await Kernels.load();
const dim = 4096;
const hd = 128;
for (const heads of [Math.ceil(32 / workers), 32]) {
  const cols = heads * hd;
  const w = k.alloc(dim * cols);
  const scales = k.alloc(dim * 4);
  const x = k.alloc(cols * 4);
  const xq = k.alloc(xqScratchBytes(cols));
  const out = k.alloc(dim * 4);
  const part = k.alloc(dim * 4);
  const bytes = k.u8(w.ptr, dim * cols);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  k.f32(scales.ptr, dim).fill(1e-3);
  k.f32(x.ptr, cols).forEach((_, i, a) => (a[i] = Math.sin(i)));
  const scratch = new Uint8Array(dim * cols);
  const reps = 8;
  let rearrange = 0;
  let whole = 0;
  let perHead = 0;
  // Rep 0 warms up (first touch of fresh pages, JIT) and is not counted.
  for (let r = -1; r < reps; r++) {
    if (r === 0) rearrange = whole = perHead = 0;
    // A B C interleaved: rearranging one layer (copy out, strided copy back), one matvec, one per head + adds.
    let t = performance.now();
    scratch.set(k.u8(w.ptr, dim * cols));
    blocksToRows(scratch, k.u8(w.ptr, dim * cols), dim, hd, heads);
    rearrange += performance.now() - t;
    t = performance.now();
    k.k.matvec_q8(out.ptr, w.ptr, scales.ptr, x.ptr, xq.ptr, dim, cols);
    whole += performance.now() - t;
    t = performance.now();
    for (let h = 0; h < heads; h++) {
      k.k.matvec_q8(part.ptr, w.ptr + h * dim * hd, scales.ptr, x.ptr + h * hd * 4, xq.ptr, dim, hd);
      k.k.add(out.ptr, out.ptr, part.ptr, dim);
    }
    perHead += performance.now() - t;
  }
  console.log(`q8 wo slice ${dim}×${cols} (${heads} heads): rearrange at load ${(rearrange / reps).toFixed(2)} ms/layer once; per token: one matvec ${(whole / reps).toFixed(2)} ms, ${heads} per-head matvecs + adds ${(perHead / reps).toFixed(2)} ms (load ${os.loadavg()[0].toFixed(2)})`);
}
