#!/usr/bin/env node
// The `flashllm` command. A committed file rather than dist/cli.js itself: npm links a package's bin
// when it installs the package, and on a fresh clone `npm ci` runs before dist/ is built, so a bin
// pointing into dist/ is never linked and `npx flashllm` asks the registry instead.
// CommonJS on purpose: libuv reads UV_THREADPOOL_SIZE and UV_USE_IO_URING once, when its thread pool
// or its io_uring ring is first needed. An ES module entry is itself read through that pool, so
// setting them inside dist/cli.js comes too late; this file is read synchronously, so it sets them
// before libuv looks, and users never have to (see libuv-settings.cjs). Values the user sets win.
"use strict";
require("./libuv-settings.cjs").configureLibuv(process.env, process.argv);
import("../dist/cli.js").catch((e) => {
  if (e?.code === "ERR_MODULE_NOT_FOUND" && String(e.message).includes("dist/cli.js")) {
    process.stderr.write("flashllm: the CLI is not built yet: run `npm run setup` (or `bash scripts/setup.sh`) in the repository first\n");
    process.exit(1);
  }
  throw e;
});
