// flashllm serve: what the HTTP layer costs. The shipped stories260K (converted on first use), read
// from flash with a neuron cache smaller than its FFN, served by `flashllm serve` (its own process) on
// 127.0.0.1 and driven by the openai client from this process, against the same model generating
// directly through the SDK here.
//
//   npm run bench:serve  [-- --requests 200 --concurrency 8 --tokens 16 --budget 1000000]
//
// Prints: direct generation (tokens/s), then through the server: requests/s, tokens/s, and the
// latency to the first streamed token (p50/p95) and to the whole answer (p50/p95), and the machine's
// load average. Every answer is checked against the direct greedy text before any figure is printed.

import os from "node:os";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import OpenAI from "openai";
import { openFlashModel } from "../packages/sdk/dist/internal.js";
import { DEFAULT_MODEL, DEFAULT_TOKENIZER, NodeFileSource, flmFor } from "../packages/node-io/dist/index.js";

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const REQUESTS = arg("requests", 200);
const CONCURRENCY = arg("concurrency", 8);
const TOKENS = arg("tokens", 16);
const BUDGET = arg("budget", 1_000_000);
const PROMPTS = ["Once upon a time", "The little dog", "Lily wanted", "One day, Tom"];

const file = await flmFor(DEFAULT_MODEL, DEFAULT_TOKENIZER, {}, (m) => console.error(`[bench] ${m}`));
const source = await NodeFileSource.open(file);
const model = await openFlashModel(source, { memoryBudget: BUDGET, contextLength: 128 });
const neurons = model.config.hiddenDim * model.config.nLayers;
console.log(`model ${file}: neuron cache ${model.memoryPlan.capacity} of ${neurons} bundles; ${REQUESTS} requests, ${CONCURRENCY} at a time, ${TOKENS} new tokens each (greedy)`);

// Direct: the same requests one after another through the SDK.
const want = [];
let t = performance.now();
let tokens = 0;
for (let i = 0; i < REQUESTS; i++) {
  let text = "";
  for await (const tok of model.generate(PROMPTS[i % PROMPTS.length], { maxTokens: TOKENS, temperature: 0 })) {
    text += tok.text;
    tokens++;
  }
  if (i < PROMPTS.length) want.push(text);
}
const directS = (performance.now() - t) / 1000;
console.log(`direct SDK:   ${(REQUESTS / directS).toFixed(1)} requests/s, ${(tokens / directS).toFixed(0)} tokens/s`);

await model.dispose();
await source.close();

const cli = fileURLToPath(new URL("../packages/node-io/dist/cli.js", import.meta.url));
const child = spawn(process.execPath, [cli, "serve", file, "--port", "0", "--memory-budget", String(BUDGET), "--context", "128", "--model-name", "m", "--max-queue", String(CONCURRENCY * 2)], {
  stdio: ["ignore", "pipe", "ignore"],
});
const url = await new Promise((resolve, reject) => {
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
    const m = /^(http:\/\/\S+\/v1)\n/m.exec(out);
    if (m) resolve(m[1]);
  });
  child.once("exit", (code) => reject(new Error(`flashllm serve exited with ${code}`)));
});
const client = new OpenAI({ apiKey: "none", baseURL: url, maxRetries: 0 });
const firstMs = [];
const wholeMs = [];
let served = 0;
let modelMs = 0; // the server's own prompt + generation time, from each stream's flashllm figures
let next = 0;
t = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < REQUESTS) {
      const i = next++;
      const t0 = performance.now();
      const stream = await client.completions.create({ model: "m", prompt: PROMPTS[i % PROMPTS.length], max_tokens: TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } });
      let text = "";
      for await (const c of stream) {
        if (c.usage) served += c.usage.completion_tokens;
        if (c.flashllm) modelMs += c.flashllm.prompt_ms + c.flashllm.generate_ms;
        if (!c.choices.length) continue;
        if (text === "" && c.choices[0].text) firstMs.push(performance.now() - t0);
        text += c.choices[0].text;
      }
      wholeMs.push(performance.now() - t0);
      if (text !== want[i % PROMPTS.length]) throw new Error(`request ${i}: got ${JSON.stringify(text)}, want ${JSON.stringify(want[i % PROMPTS.length])}`);
    }
  }),
);
const serverS = (performance.now() - t) / 1000;
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))].toFixed(1);
console.log(`through HTTP: ${(REQUESTS / serverS).toFixed(1)} requests/s, ${(served / serverS).toFixed(0)} tokens/s (${((100 * directS) / serverS).toFixed(0)}% of direct)`);
console.log(`the server's generation time (flashllm figures): ${(modelMs / REQUESTS).toFixed(1)} ms per request, ${((100 * modelMs) / 1000 / serverS).toFixed(0)}% of the wall time; the rest (${((serverS * 1000 - modelMs) / REQUESTS).toFixed(1)} ms per request) is HTTP, SSE, JSON and the hand-over between requests`);
console.log(`latency (${CONCURRENCY} clients queueing): first token p50 ${pct(firstMs, 50)} ms, p95 ${pct(firstMs, 95)} ms; whole answer p50 ${pct(wholeMs, 50)} ms, p95 ${pct(wholeMs, 95)} ms`);
console.log(`machine: ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
child.kill("SIGINT");
