// The sharded engine in a browser tab: tokens per second with 1 worker, 2 workers through a
// SharedArrayBuffer (the page cross-origin isolated) and 2 workers through messages (not isolated), in
// Debian's headless Chromium, interleaved (A B C A B C) so that the machine's load falls on all alike.
// Models: the shipped stories260K (dim 64: what the round trips between workers cost) and a synthetic
// Llama-2-7B-shaped file cut to `--layers` layers (dim 4096, FFN 11008, random q8: what splitting
// the compute gains). No budget: after the first token every neuron is cached, so the figures are
// compute and coordination, not reads. Every run's greedy tokens are checked against the first.
//
//   npm run bench:web  [-- --rounds 2 --tokens 24 --layers 1 --no-7b]
//
// Prints one line per run (tokens/s after the first token, the engine's memory per worker) and the load.

import os from "node:os";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { ensureShippedModel, startDemoServer } from "../packages/web-io/demo/server.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const ROUNDS = arg("rounds", 2);
const TOKENS = arg("tokens", 24);
const LAYERS = arg("layers", 1);
const CHROMIUM = process.env.FLASHLLM_CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const models = { "stories260K.flm": await ensureShippedModel() };
if (!argv.includes("--no-7b")) {
  const dir = join(ROOT, ".cache/bench-web");
  mkdirSync(dir, { recursive: true });
  const f = join(dir, `llama-2-7b-${LAYERS}l.flm`);
  if (!existsSync(f)) {
    console.error(`[bench] writing ${f} (flashllm synth)…`);
    execFileSync(process.execPath, [join(ROOT, "packages/node-io/bin/flashllm.cjs"), "synth", "--shape", "llama-2-7b", "--layers", String(LAYERS), "--vocab", "4096", "-o", f], { stdio: "inherit" });
  }
  models["llama-2-7b.flm"] = f;
}

const isolated = await startDemoServer({ port: 0, host: "127.0.0.1", models });
const plain = await startDemoServer({ port: 0, host: "127.0.0.1", coep: "none", models });
const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
const pages = {};
for (const [name, srv] of [["isolated", isolated], ["plain", plain]]) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(srv.url);
  await page.waitForSelector("body[data-ready=true]");
  pages[name] = { page, url: srv.url };
}

async function run(variant, model) {
  const { page, url } = pages[variant.page];
  return page.evaluate(
    async ([u, workers, n]) => {
      const c = window.flashllmDemo.FlashWorkerClient.create();
      try {
        const info = await c.load(u, { workers, contextLength: 64 });
        const tokens = [];
        for await (const t of c.generate("Once upon a time", { temperature: 0, maxTokens: n })) tokens.push(t.token);
        return { tokens, tps: c.lastStats.tokensPerSecond, engine: info.engine };
      } finally {
        c.terminate();
      }
    },
    [`${url}models/${model}`, variant.workers, TOKENS],
  );
}

const variants = [
  { label: "1 worker", page: "isolated", workers: 1 },
  { label: "2 workers, SharedArrayBuffer", page: "isolated", workers: 2 },
  { label: "2 workers, messages", page: "plain", workers: 2 },
];
const mib = (b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.log(`Chromium ${browser.version()}, ${os.cpus().length} cores, ${TOKENS} greedy tokens per run, no budget; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
for (const model of Object.keys(models)) {
  let want;
  const rates = new Map(variants.map((v) => [v.label, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of variants) {
      const got = await run(v, model);
      want ??= got.tokens;
      if (JSON.stringify(got.tokens) !== JSON.stringify(want)) throw new Error(`${model} ${v.label}: tokens differ from the first run`);
      rates.get(v.label).push(got.tps);
      console.log(`${model}  ${v.label.padEnd(30)} ${got.tps.toFixed(2).padStart(8)} tokens/s  memory per worker ${got.engine.memoryPerWorker.map(mib).join(" + ")}${got.engine.coordinatorBytes ? ` (+ ${mib(got.engine.coordinatorBytes)} coordinator)` : ""}`);
    }
  }
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = mean(rates.get("1 worker"));
  console.log(`${model}: mean tokens/s ${variants.map((v) => `${v.label} ${mean(rates.get(v.label)).toFixed(2)} (${(mean(rates.get(v.label)) / base).toFixed(2)}x)`).join("; ")}`);
}
console.log(`load average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
await browser.close();
await isolated.close();
await plain.close();
