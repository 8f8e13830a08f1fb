"use strict";
// libuv settings the `flashllm` command needs, applied before libuv reads them (see flashllm.cjs).

/**
 * Sets, in `env`, what the user has not set:
 * - UV_THREADPOOL_SIZE: libuv's thread pool (default 4 threads, so at most 4 file reads at once,
 *   whatever the engine asks): the reads in flight (`--in-flight`) plus 8 for other work, at least 64,
 *   at most libuv's 1024.
 * - UV_USE_IO_URING=1: libuv 1.45+ can submit file reads through io_uring instead of its thread pool:
 *   measured here (benches/reads.mjs, docs/benchmarks.md) about half the CPU per read and up to 2x the
 *   reads/s. Node turned it off by default (CVE-2024-22017: io_uring requests keep the credentials of
 *   the process before a setuid call); flashllm never changes credentials. UV_USE_IO_URING=0 keeps it off.
 */
function configureLibuv(env, argv) {
  if (!env.UV_THREADPOOL_SIZE) {
    const at = argv.indexOf("--in-flight");
    const inFlight = at >= 0 ? Number(argv[at + 1]) : 0;
    env.UV_THREADPOOL_SIZE = String(Math.min(1024, Math.max(64, Number.isInteger(inFlight) ? inFlight + 8 : 0)));
  }
  if (env.UV_USE_IO_URING === undefined) env.UV_USE_IO_URING = "1";
  return env;
}

module.exports = { configureLibuv };
