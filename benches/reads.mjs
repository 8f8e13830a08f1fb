#!/usr/bin/env node
// `node benches/reads.mjs [--file F] [--bs 16384,131072] [--depth 32] [--seconds 3]`: what one read
// costs through each way Node can submit positional reads, against fio on the same file, request size
// and depth (random O_DIRECT reads over the file's last 90%, page-aligned targets as WASM memory gives).
// Ways: callback fs.read on libuv's thread pool (4 threads, the default, and 64); the same with libuv's
// io_uring backend (UV_USE_IO_URING=1); FileHandle.read (promises); and worker threads that each keep
// their share of the depth in flight with fs.readSync (no event-loop hop per read on the main thread).
// Each way runs in its own child process, because libuv reads its settings once at start-up.
// Prints reads/s, GB/s, % of fio, and CPU time per read (user + system of the whole process).
import { spawnSync, execFileSync } from "node:child_process";
import { constants, openSync, read, readSync, fstatSync, closeSync } from "node:fs";
import { open } from "node:fs/promises";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";

const self = fileURLToPath(import.meta.url);

function arg(name, def) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? process.argv[at + 1] : def;
}

/** xorshift32: the same offsets in every child. */
function offsets(seed, n, bs, size) {
  const out = new Float64Array(n);
  let s = seed >>> 0 || 1;
  const start = Math.floor((size * 0.1) / 4096);
  const blocks = Math.floor(size / 4096) - start - Math.ceil(bs / 4096);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[i] = (start + (s % blocks)) * 4096;
  }
  return out;
}

/** A page-aligned buffer: WebAssembly.Memory's base is page-aligned, as O_DIRECT needs. */
function aligned(bytes, shared = false) {
  const pages = Math.ceil(bytes / 65536);
  return new Uint8Array(new WebAssembly.Memory({ initial: pages, maximum: pages, shared }).buffer);
}

async function child(way, file, bs, depth, seconds) {
  const fd = openSync(file, constants.O_RDONLY | constants.O_DIRECT);
  const size = fstatSync(fd).size;
  const offs = offsets(12345 + bs, 1 << 20, bs, size);
  const buf = aligned(depth * bs);
  let done = 0;
  let bytes = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  if (way === "workers") {
    const threads = Math.min(depth, Number(arg("threads", "2")));
    const results = await Promise.all(Array.from({ length: threads }, (_, w) => new Promise((resolve, reject) => {
      const wk = new Worker(self, { workerData: { file, bs, depth: Math.ceil(depth / threads), seconds, seed: 777 + w } });
      wk.on("message", resolve);
      wk.on("error", reject);
    })));
    for (const r of results) { done += r.done; bytes += r.bytes; }
  } else if (way === "source") {
    // The engine's own path: NodeFileSource.read over batches of requests into WASM-memory views.
    const { NodeFileSource } = await import(new URL("../packages/node-io/dist/index.js", import.meta.url).href);
    const src = await NodeFileSource.open(file, { direct: true, maxInFlight: depth });
    const batch = Number(arg("batch", "256"));
    const target = aligned(batch * bs);
    let i = 0;
    while (performance.now() < until) {
      const reqs = Array.from({ length: batch }, (_, k) => ({ offset: offs[i++ & 0xfffff], length: bs, target: target.subarray(k * bs, (k + 1) * bs) }));
      await src.read(reqs);
      done += batch;
      bytes += batch * bs;
    }
    await src.close();
  } else if (way === "filehandle") {
    const fh = await open(file, constants.O_RDONLY | constants.O_DIRECT);
    let i = 0;
    await Promise.all(Array.from({ length: depth }, async (_, slot) => {
      const view = buf.subarray(slot * bs, (slot + 1) * bs);
      while (performance.now() < until) {
        const r = await fh.read(view, 0, bs, offs[i++ & 0xfffff]);
        done++;
        bytes += r.bytesRead;
      }
    }));
    await fh.close();
  } else {
    let i = 0;
    await new Promise((resolve) => {
      let active = 0;
      const issue = (slot) => {
        if (performance.now() >= until) {
          if (--active === 0) resolve();
          return;
        }
        read(fd, buf, slot * bs, bs, offs[i++ & 0xfffff], (err, n) => {
          if (err) throw err;
          done++;
          bytes += n;
          issue(slot);
        });
      };
      for (let s = 0; s < depth; s++) { active++; issue(s); }
    });
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  closeSync(fd);
  return { way, bs, depth, readsPerSec: (1000 * done) / ms, bytesPerSec: (1000 * bytes) / ms, cpuUsPerRead: (cpu.user + cpu.system) / done };
}

// A worker: `depth` reads in flight would need async; readSync keeps one in flight per worker thread,
// so the parent starts `threads` workers and each runs its share of the depth as sequential readSync loops
// in turn (depth per worker > 1 is served by... one at a time: the honest figure for sync reads).
function workerMain() {
  const { file, bs, seconds, seed } = workerData;
  const fd = openSync(file, constants.O_RDONLY | constants.O_DIRECT);
  const size = fstatSync(fd).size;
  const offs = offsets(seed, 1 << 20, bs, size);
  const buf = aligned(bs);
  const until = performance.now() + seconds * 1000;
  let done = 0;
  let bytes = 0;
  for (let i = 0; performance.now() < until; i++) {
    bytes += readSync(fd, buf, 0, bs, offs[i & 0xfffff]);
    done++;
  }
  closeSync(fd);
  parentPort.postMessage({ done, bytes });
}

function fio(file, bs, depth, seconds) {
  const size = Number(execFileSync("stat", ["-c", "%s", file], { encoding: "utf8" }));
  const start = Math.floor((size * 0.1) / 4096) * 4096;
  const out = execFileSync("fio", ["--name=reads", `--filename=${file}`, "--readonly", "--rw=randread", `--bs=${bs}`, `--iodepth=${depth}`, "--ioengine=libaio", "--direct=1",
    `--offset=${start}`, `--size=${Math.floor((size - start) / bs) * bs}`, `--runtime=${seconds}`, "--time_based", "--output-format=json"], { encoding: "utf8" });
  const job = JSON.parse(out.slice(out.indexOf("{"))).jobs[0];
  const cpuUs = (job.usr_cpu + job.sys_cpu) / 100 * seconds * 1e6;
  return { way: "fio (libaio)", bs, depth, readsPerSec: job.read.iops, bytesPerSec: job.read.bw_bytes, cpuUsPerRead: cpuUs / (job.read.iops * seconds) };
}

async function main() {
  if (process.argv[2] === "--child") {
    const [, , , way, file, bs, depth, seconds] = process.argv;
    process.stdout.write(JSON.stringify(await child(way, file, Number(bs), Number(depth), Number(seconds))) + "\n");
    return;
  }
  const file = arg("file", "/work/big/llama-2-7b.flm");
  const depth = Number(arg("depth", "32"));
  const seconds = Number(arg("seconds", "3"));
  const sizes = arg("bs", "16384,131072").split(",").map(Number);
  const ways = [
    ["callback fs.read, 4 threads (libuv default)", "callback", { UV_THREADPOOL_SIZE: "4" }],
    [`callback fs.read, ${depth + 8} threads`, "callback", { UV_THREADPOOL_SIZE: String(depth + 8) }],
    [`callback fs.read, io_uring (UV_USE_IO_URING=1)`, "callback", { UV_THREADPOOL_SIZE: String(depth + 8), UV_USE_IO_URING: "1" }],
    [`FileHandle.read, ${depth + 8} threads`, "filehandle", { UV_THREADPOOL_SIZE: String(depth + 8) }],
    [`NodeFileSource.read (batches of ${arg("batch", "256")}), ${depth + 8} threads`, "source", { UV_THREADPOOL_SIZE: String(depth + 8) }],
    [`NodeFileSource.read (batches of ${arg("batch", "256")}), io_uring`, "source", { UV_THREADPOOL_SIZE: String(depth + 8), UV_USE_IO_URING: "1" }],
    [`worker threads, readSync (${arg("threads", "2")} workers, 1 read each in flight)`, "workers", {}],
  ];
  const load = () => execFileSync("cat", ["/proc/loadavg"], { encoding: "utf8" }).split(" ").slice(0, 3).join(" ");
  console.log(`file ${file}, random O_DIRECT reads, depth ${depth}, ${seconds} s each; load average at start ${load()}`);
  console.log("| way | request | reads/s | GB/s | % of fio | CPU µs per read | load |");
  console.log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const bs of sizes) {
    const ref = fio(file, bs, depth, seconds);
    const row = (label, r) => console.log(`| ${label} | ${bs / 1024} KiB | ${r.readsPerSec.toFixed(0)} | ${(r.bytesPerSec / 1e9).toFixed(2)} | ${(100 * r.bytesPerSec / ref.bytesPerSec).toFixed(0)}% | ${r.cpuUsPerRead.toFixed(1)} | ${load()} |`);
    row("fio, libaio", ref);
    for (const [label, way, env] of ways) {
      const r = spawnSync(process.execPath, [self, "--child", way, file, String(bs), String(depth), String(seconds), ...process.argv.slice(2)], { env: { ...process.env, ...env }, encoding: "utf8" });
      if (r.status !== 0) { console.log(`| ${label} | ${bs / 1024} KiB | failed: ${r.stderr.split("\n")[0]} |`); continue; }
      row(label, JSON.parse(r.stdout));
    }
  }
}

if (isMainThread) await main();
else workerMain();
