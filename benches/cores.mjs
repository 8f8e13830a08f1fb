#!/usr/bin/env node
// `node benches/cores.mjs`: how much a second thread adds on this machine, before any engine is
// involved. The sharded engine and the reader thread can only win if two threads compute more than one:
// this measures that directly, with the engine's own kernel.
//  1. matvec_q8 (4096×11008, the 7B FFN shape) on one thread, alone: GB/s of weight bytes.
//  2. the same on two threads at once, each its own WASM instance and weights (what 2 shards do):
//     each thread's GB/s and the sum.
//  3. one thread's matvec while the other thread only spins (no memory traffic): what a busy sibling
//     costs, whatever it does.
//  4. a scalar spin loop on one thread, then on two: the machine's parallel throughput without memory.
// Each case runs `--seconds` (default 3) after a warm-up, cases interleaved twice. Prints the load.
import { loadavg, cpus } from "node:os";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";

const self = fileURLToPath(import.meta.url);
const ROWS = 4096;
const COLS = 11008;

async function kernelLoop(seconds) {
  const { Kernels } = await import(new URL("../packages/sdk/dist/internal.js", import.meta.url).href);
  const k = await Kernels.load();
  const w = k.alloc(ROWS * COLS, 64), sc = k.alloc(ROWS * 4), x = k.alloc(COLS * 4), xq = k.alloc((COLS + 8) * 2), out = k.alloc(ROWS * 4);
  const wv = k.u8(w.ptr, ROWS * COLS);
  for (let i = 0; i < wv.length; i++) wv[i] = (Math.imul(i, 2654435761) >>> 24) & 0xff;
  k.f32(sc.ptr, ROWS).fill(0.01);
  const xv = k.f32(x.ptr, COLS);
  for (let i = 0; i < COLS; i++) xv[i] = Math.sin(i);
  const run = () => k.k.matvec_q8(out.ptr, w.ptr, sc.ptr, x.ptr, xq.ptr, ROWS, COLS);
  for (let i = 0; i < 10; i++) run();
  return () => {
    let n = 0;
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    while (performance.now() < until) {
      run();
      n++;
    }
    return (n * ROWS * COLS) / ((performance.now() - t0) / 1000) / 1e9;
  };
}

function spinLoop(seconds) {
  return () => {
    let x = 0;
    let n = 0;
    const until = performance.now() + seconds * 1000;
    while (performance.now() < until) {
      for (let i = 0; i < 100000; i++) x = (x * 1.0000001 + i) % 1e9;
      n++;
    }
    return n + (x > 2e9 ? 1 : 0);
  };
}

if (!isMainThread) {
  const { kind, seconds } = workerData;
  const measure = kind === "matvec" ? await kernelLoop(seconds) : spinLoop(seconds);
  parentPort.postMessage("ready");
  parentPort.once("message", () => parentPort.postMessage(measure()));
} else {
  const arg = (name, def) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? process.argv[at + 1] : def;
  };
  const seconds = Number(arg("seconds", "3"));
  /** Starts workers of the given kinds, lets them all begin at once, returns their results. */
  async function together(kinds) {
    const ws = kinds.map((kind) => new Worker(self, { workerData: { kind, seconds } }));
    await Promise.all(ws.map((w) => new Promise((r) => w.once("message", r))));
    const results = ws.map((w) => new Promise((r) => w.once("message", r)));
    for (const w of ws) w.postMessage("go");
    const out = await Promise.all(results);
    await Promise.all(ws.map((w) => w.terminate()));
    return out;
  }
  console.log(`machine: ${cpus().length} CPUs (${cpus()[0].model}), load average ${loadavg().map((l) => l.toFixed(2)).join(" / ")} at start`);
  console.log("| case | thread A GB/s | thread B | sum | vs one thread alone |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (let round = 0; round < 2; round++) {
    const [alone] = await together(["matvec"]);
    console.log(`| matvec_q8 on one thread, alone | ${alone.toFixed(2)} | | ${alone.toFixed(2)} | 1.00x |`);
    const [a, b] = await together(["matvec", "matvec"]);
    console.log(`| matvec_q8 on two threads at once (two instances, as two shards) | ${a.toFixed(2)} | ${b.toFixed(2)} | ${(a + b).toFixed(2)} | ${((a + b) / alone).toFixed(2)}x |`);
    const [c] = await together(["matvec", "spin"]);
    console.log(`| matvec_q8 while the other thread spins (no memory traffic) | ${c.toFixed(2)} | (spin) | | ${(c / alone).toFixed(2)}x |`);
    const [s1] = await together(["spin"]);
    const [s2, s3] = await together(["spin", "spin"]);
    console.log(`| scalar spin loop (no memory traffic), rounds/s: one thread alone, then two at once | ${s2} | ${s3} | ${s2 + s3} | ${((s2 + s3) / s1).toFixed(2)}x (alone: ${s1}) |`);
  }
  console.log(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(" / ")}`);
}
