import { readFile, stat } from "node:fs/promises";
import { loadLlama2c, parseTokenizer, openFlashModel, openFlm, ShardedFlashModel, type FlashModel, type FlashSource, type FlashStrategy, type LanguageModel } from "@flashllm/sdk";
import { NodeShardHost } from "../shards/node-shard-host.js";
import { parseWorkers, shardMemoryLines, sumShardStats } from "../workers.js";
import { parseBudget } from "../budget.js";
import { formatBytes, peakRssBytes } from "../format-stats.js";
import { flmFor } from "../model-files.js";
import { DEFAULT_MODEL, DEFAULT_TOKENIZER } from "../paths.js";
import { NodeFileSource } from "../source/index.js";

export interface RunOptions {
  model?: string;
  tokenizer?: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: number;
  activation: "silu" | "relu";
  memoryBudget?: string;
  strategy: FlashStrategy;
  window: number;
  dtype: "f32" | "q8";
  context?: number;
  direct: boolean;
  inFlight: number;
  dense: boolean;
  selector?: "all" | "predictor";
  maxGap: number;
  /** Shard workers: an integer, or "auto" (default: every core for a model of 256 MiB or more, else 1). */
  workers?: string;
}

/**
 * `flashllm run`: streams generated text to stdout, then one line of figures to stderr. A llama2.c
 * checkpoint is converted to `.flm` on first use (kept in the cache folder) and run from flash, unless
 * `--dense` asks for the whole model in memory.
 */
export async function runCommand(o: RunOptions): Promise<void> {
  const modelPath = o.model ?? DEFAULT_MODEL;
  const isFlm = modelPath.endsWith(".flm");
  const tokPath = o.tokenizer ?? (o.model ? undefined : DEFAULT_TOKENIZER);
  if (!isFlm && !tokPath) throw new Error("a llama2.c checkpoint needs --tokenizer <tok.bin>");
  // KV cache for what this run can reach (prompt + new tokens); a rough bound until the tokenizer is known.
  let contextLength = o.context ?? new TextEncoder().encode(o.prompt).length + 2 + o.maxTokens;

  let model: LanguageModel;
  let source: NodeFileSource | undefined;
  let flashFile = "";
  if (o.dense) {
    if (isFlm) throw new Error("--dense runs a llama2.c checkpoint in memory; a .flm always runs from flash");
    model = await loadLlama2c(await readFile(modelPath), await readFile(tokPath!), { activation: o.activation, contextLength });
  } else {
    flashFile = isFlm ? modelPath : await flmFor(modelPath, tokPath!, { dtype: o.dtype, activation: o.activation }, (m) => process.stderr.write(`[flashllm] ${m}\n`));
    const fileBytes = (await stat(flashFile)).size;
    const memoryBudget = o.memoryBudget ? parseBudget(o.memoryBudget, fileBytes) : undefined;
    source = await NodeFileSource.open(flashFile, { direct: o.direct, maxInFlight: o.inFlight });
    if (o.context === undefined) contextLength = (await promptTokenCount(source, o.prompt)) + o.maxTokens;
    const workers = parseWorkers(o.workers, fileBytes);
    const common = { memoryBudget, strategy: o.strategy, window: o.window, contextLength, selector: o.selector, maxGapBytes: o.maxGap };
    if (workers > 1) {
      model = await openFlashModel(source, { ...common, workers, shardHost: new NodeShardHost(flashFile, { direct: o.direct, maxInFlight: o.inFlight }) });
      const sm = model as ShardedFlashModel;
      process.stderr.write(
        `[flashllm] ${flashFile}: ${formatBytes(fileBytes)}; budget ${memoryBudget ? `${formatBytes(memoryBudget)} (${((100 * memoryBudget) / fileBytes).toFixed(0)}% of the file)` : "unlimited"}, ` +
          `${contextLength} positions, strategy ${o.strategy}, selector ${sm.file.manifest.predictor && o.selector !== "all" ? "predictor" : "all"}\n` +
          shardMemoryLines(sm).map((l) => `[flashllm]   ${l}\n`).join(""),
      );
    } else {
    model = await openFlashModel(source, common);
    const p = (model as FlashModel).memoryPlan;
    process.stderr.write(
      `[flashllm] ${flashFile}: ${formatBytes(fileBytes)}; budget ${memoryBudget ? `${formatBytes(memoryBudget)} (${((100 * memoryBudget) / fileBytes).toFixed(0)}% of the file)` : "unlimited"}: ` +
        `resident ${formatBytes(p.residentBytes)}, KV+activations ${formatBytes(p.stateBytes)} (${contextLength} positions), ` +
        `neuron cache ${formatBytes(p.cacheBytes)} (${p.capacity} of ${model.config.hiddenDim * model.config.nLayers} bundles), strategy ${o.strategy}, selector ${(model as FlashModel).predictor ? "predictor" : "all"}\n`,
    );    }
  }

  const ac = new AbortController();
  const onInt = () => ac.abort("interrupted");
  process.once("SIGINT", onInt);
  try {
    if (o.prompt) process.stdout.write(o.prompt);
    for await (const t of model.generate(o.prompt, { maxTokens: o.maxTokens, temperature: o.temperature, topP: o.topP, seed: o.seed, signal: ac.signal })) {
      process.stdout.write(t.text);
    }
    process.stdout.write("\n");
    process.stderr.write((model instanceof ShardedFlashModel ? await shardedStatsLine(model) : statsLine(model)) + "\n");
  } finally {
    process.off("SIGINT", onInt);
    await model.dispose();
    await source?.close();
  }
}

/** One line of figures: speed, then (flash) I/O per token, hit rate and the time split, then memory. */
export function statsLine(model: LanguageModel): string {
  const s = model.lastStats!;
  const parts = [`${s.generatedTokens} tokens`, `${s.tokensPerSecond.toFixed(1)} tok/s`];
  const flash = (model as FlashModel).flash;
  if (flash) {
    const f = flash.stats;
    const t = Math.max(f.tokens, 1);
    parts.push(
      `read ${formatBytes(f.bytesRead / t)}/token in ${(f.readRequests / t).toFixed(1)} reads (mean ${formatBytes(f.bytesRead / Math.max(f.readRequests, 1))})`,
      `cache hit ${((100 * f.cacheHits) / Math.max(f.activeNeurons, 1)).toFixed(1)}%`,
      `per token: I/O ${(f.ioMs / t).toFixed(2)} ms, memory ${(f.memoryMs / t).toFixed(2)} ms, FFN compute ${(f.computeMs / t).toFixed(2)} ms`,
    );
  }
  parts.push(`peak RSS ${formatBytes(peakRssBytes())}`, `WASM memory ${formatBytes(model.wasmMemoryBytes)}`);
  return `[stats] ${parts.join(", ")}`;
}

/** The stats line of a sharded model: the shards' reads summed, each shard's time split, every WASM memory. */
export async function shardedStatsLine(model: ShardedFlashModel): Promise<string> {
  const s = model.lastStats!;
  const figures = await model.shardFigures();
  const f = sumShardStats(figures);
  const t = Math.max(f.tokens, 1);
  const parts = [
    `${s.generatedTokens} tokens`,
    `${s.tokensPerSecond.toFixed(1)} tok/s`,
    `read ${formatBytes(f.bytesRead / t)}/token in ${(f.readRequests / t).toFixed(1)} reads (mean ${formatBytes(f.bytesRead / Math.max(f.readRequests, 1))})`,
    `cache hit ${((100 * f.cacheHits) / Math.max(f.activeNeurons, 1)).toFixed(1)}%`,
    ...figures.map((g) => `shard ${g.index} per token: I/O ${(g.stats.ioMs / t).toFixed(2)} ms, memory ${(g.stats.memoryMs / t).toFixed(2)} ms, FFN compute ${(g.stats.computeMs / t).toFixed(2)} ms`),
    `peak RSS ${formatBytes(peakRssBytes())}`,
    `WASM memory ${formatBytes(model.wasmMemoryBytes)} + ${figures.map((g) => formatBytes(g.memoryBytes)).join(" + ")}`,
  ];
  return `[stats] ${parts.join(", ")}`;
}

/** Tokens the prompt takes, with the file's own tokenizer (so the KV cache is sized exactly). */
async function promptTokenCount(source: FlashSource, prompt: string): Promise<number> {
  const file = await openFlm(source);
  const bytes = await file.readTokenizer();
  const vocab = file.manifest.config.vocabSize;
  return parseTokenizer(file.manifest.tokenizer.kind, bytes, vocab).encode(prompt, true, false).length;
}
