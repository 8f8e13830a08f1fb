#!/usr/bin/env node
// The `flashllm` command. libuv sizes its thread pool once, from UV_THREADPOOL_SIZE, at the first
// call that needs it (default 4 threads: at most 4 file reads run at once, whatever the engine asks).
// An ES module entry is itself read through that pool, so setting the variable inside dist/cli.js
// comes too late; this CommonJS file is read synchronously, so it sets the size before the pool
// exists and users never have to. A size the user sets wins.
"use strict";
if (!process.env.UV_THREADPOOL_SIZE) {
  const at = process.argv.indexOf("--in-flight");
  const inFlight = at > 0 ? Number(process.argv[at + 1]) : 0;
  // Reads in flight plus a few threads for other work (opening files, stat), at most libuv's 1024.
  process.env.UV_THREADPOOL_SIZE = String(Math.min(1024, Math.max(64, Number.isInteger(inFlight) ? inFlight + 8 : 0)));
}
// libuv 1.45+ can submit file reads through io_uring instead of its thread pool: measured here
// (benches/reads.mjs, docs/benchmarks.md) about half the CPU per read and up to 2x the reads/s. Node
// turned it off by default (CVE-2024-22017: io_uring requests keep the credentials of the process
// before a setuid call); flashllm never changes credentials. Set UV_USE_IO_URING=0 to keep it off.
if (process.env.UV_USE_IO_URING === undefined) process.env.UV_USE_IO_URING = "1";
import("../dist/cli.js");
