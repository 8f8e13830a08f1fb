#!/usr/bin/env node
// `npm run bench [-- options]`: the end-to-end flash benchmark (naive vs bundled vs windowed vs
// windowed+bundled (+lookahead), cold storage, fio as the yardstick). Short by default: a
// Llama-2-7B-shaped model with 4 of its 32 layers and a 4000-token vocabulary (random q8 weights).
// `npm run bench -- --full` runs the full 7B shape (a 6.7 GB file). Options: `flashllm bench --help`.
//
// Runs the CLI in a child process with --expose-gc so each variant starts from a clean heap. The CLI's
// launcher (packages/node-io/bin/flashllm.cjs) sizes libuv's thread pool for the reads in flight.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
if (!args.includes("--out-dir")) args.push("--out-dir", join(root, ".cache", "bench"));
const r = spawnSync(process.execPath, ["--expose-gc", join(root, "packages/node-io/bin/flashllm.cjs"), "bench", ...args], { stdio: "inherit" });
process.exit(r.status ?? 1);
