/**
 * Child process of the llama.cpp peer measurement (`measureLlamaCpp`): loads a GGUF with
 * node-llama-cpp (prebuilt CPU binary, mmap, dense) and generates greedily, timing each token.
 * It runs in its own process so that its memory (mmap'd weights, context) is measured and released
 * apart from flashllm's. Input: one JSON argument; output: one JSON line on stdout.
 *
 * node-llama-cpp is a development dependency of the repository, never of the SDK or this package:
 * it is imported dynamically, and its absence is reported, not thrown as a crash.
 */
import { performance } from "node:perf_hooks";

interface ChildInput {
  gguf: string;
  threads: number;
  promptTokens: number[];
  tokens: number;
  contextSize: number;
}

/** The part of node-llama-cpp's API used here (kept local: the package is optional). */
interface NodeLlamaCpp {
  LlamaLogLevel: { error: unknown };
  getLlama(o: object): Promise<{ loadModel(o: object): Promise<LlamaModel> }>;
}
interface LlamaModel {
  createContext(o: object): Promise<{ getSequence(): { evaluate(t: number[], o: object): AsyncGenerator<number> }; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2]) as ChildInput;
  let lib: NodeLlamaCpp;
  try {
    const name = "node-llama-cpp"; // a variable: resolved at run time, not by the compiler or bundler
    lib = (await import(name)) as NodeLlamaCpp;
  } catch (e) {
    console.log(JSON.stringify({ ok: false, reason: `node-llama-cpp is not installed: ${(e as Error).message}` }));
    return;
  }
  const t0 = performance.now();
  const llama = await lib.getLlama({ gpu: false, build: "never", logLevel: lib.LlamaLogLevel.error, maxThreads: input.threads });
  const model = await llama.loadModel({ modelPath: input.gguf, useMmap: true, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: input.contextSize, threads: { ideal: input.threads, min: input.threads }, batchSize: Math.max(8, input.promptTokens.length) });
  const sequence = context.getSequence();
  const loadMs = performance.now() - t0;
  const tokens: number[] = [];
  const stamps: number[] = [];
  let t = performance.now();
  const promptStart = t;
  let promptMs = 0;
  for await (const token of sequence.evaluate(input.promptTokens, { temperature: 0 })) {
    const now = performance.now();
    if (tokens.length === 0) promptMs = now - promptStart;
    else stamps.push(now - t);
    t = now;
    tokens.push(token);
    if (tokens.length >= input.tokens) break;
  }
  await context.dispose();
  await model.dispose();
  const maxRssBytes = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ ok: true, loadMs, promptMs, tokenMs: stamps, tokens, maxRssBytes, threads: input.threads }));
}

main().catch((e) => {
  console.log(JSON.stringify({ ok: false, reason: (e as Error).message ?? String(e) }));
});
