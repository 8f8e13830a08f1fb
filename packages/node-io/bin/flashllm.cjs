#!/usr/bin/env node
// The `flashllm` command. libuv reads UV_THREADPOOL_SIZE and UV_USE_IO_URING once, when its thread
// pool or its io_uring ring is first needed. An ES module entry is itself read through that pool, so
// setting them inside dist/cli.js comes too late; this CommonJS file is read synchronously, so it sets
// them before libuv looks, and users never have to (see libuv-settings.cjs). Values the user sets win.
"use strict";
require("./libuv-settings.cjs").configureLibuv(process.env, process.argv);
import("../dist/cli.js");
