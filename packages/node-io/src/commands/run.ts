import { AbortedError, FlashError, Kernels, ShardedFlashModel, loadLlama2c, openFlashModel, openFlm, parseTokenizer, type FlashModel, type FlashStrategy, type LanguageModel } from "@flashllm/sdk/internal";
import { parseBudget } from "../budget.js";
import { formatBytes, peakRssBytes } from "../format-stats.js";
import { readInputFile, requireFile, sniffModel } from "../input-files.js";
import { flmFor } from "../model-files.js";
import { containerDtype, parseCliDtype } from "../dtypes.js";
import { stdoutWatch } from "../output.js";
import { DEFAULT_SHIPPED, shippedFiles, shippedFlm, type ShippedName } from "../shipped.js";
import { NodeShardHost, shardThreads } from "../shards/node-shard-host.js";
import { NodeFileSource, ThreadedFileSource } from "../source/index.js";
import { parseWorkers, shardMemoryLines, sumShardStats } from "../workers.js";

export interface RunOptions {
  model?: string;
  /** A model shipped with the package (default stories260K-relu, with predictors). */
  shipped?: ShippedName;
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
  /** Weights type when converting a llama2.c checkpoint (one of `CLI_DTYPES`; default f32). */
  dtype?: string;
  context?: number;
  direct: boolean;
  inFlight: number;
  /** Read layer l+1's predicted neurons while layer l computes (the lookahead; needs the file's predictors). */
  prefetch?: boolean;
  /** With workers > 1: threads the shards run on (default: the cores). */
  shardThreads?: number;
  /** Where reads run with one instance: `inline` (this thread) or `thread` (a reader thread). */
  reader?: "inline" | "thread";
  dense: boolean;
  selector?: "all" | "predictor";
  maxGap: number;
  verify: boolean;
  /** Shards: an integer, or "auto" (default: `defaultWorkers`; 1 with a reader thread). */
  workers?: string;
}

/** Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
const EXIT_INTERRUPTED = 130;

/**
 * `flashllm run`: streams generated text to stdout, then one line of figures to stderr. A llama2.c
 * checkpoint is converted to `.flm` on first use (kept in the cache folder) and run from flash, unless
 * `--dense` asks for the whole model in memory. The file's kind is read from its first bytes.
 */
export async function runCommand(o: RunOptions): Promise<void> {
  if (o.model && o.shipped) throw new FlashError("BAD_ARGUMENT", "--model and --shipped both name the model: give one");
  const shipped = o.model ? undefined : shippedFiles(o.shipped ?? DEFAULT_SHIPPED);
  const modelPath = o.model ?? shipped!.checkpoint;
  const activation = shipped?.activation ?? o.activation;
  const kind = await sniffModel(modelPath);
  const tokPath = o.tokenizer ?? shipped?.tokenizer;
  if (kind === "llama2c" && !tokPath) throw new FlashError("BAD_ARGUMENT", `${modelPath} is not a .flm container, so it is read as a llama2.c checkpoint, which needs --tokenizer <tok.bin>`);
  if (o.dense && o.memoryBudget !== undefined) throw new FlashError("BAD_ARGUMENT", "--dense loads the whole model into memory, so --memory-budget cannot apply: drop one of them");
  if (!(o.maxTokens >= 0)) throw new FlashError("BAD_ARGUMENT", `--max-tokens must be ≥ 0, got ${o.maxTokens}`);
  const dtype = o.dtype === undefined ? undefined : parseCliDtype(o.dtype, "--dtype");
  if (dtype !== undefined && kind === "flm") throw new FlashError("BAD_ARGUMENT", `--dtype applies when converting a llama2.c checkpoint; ${modelPath} is a .flm, which keeps the types it was converted with (\`flashllm inspect\` shows them)`);
  if (dtype !== undefined && o.dense) throw new FlashError("BAD_ARGUMENT", "--dense runs the checkpoint's own f32 weights in memory; --dtype applies to runs from flash: drop one of them");
  const log = (m: string) => process.stderr.write(`[flashllm] ${m}\n`);

  let model: LanguageModel;
  let source: NodeFileSource | ThreadedFileSource | undefined;
  let promptTokens: number[];
  if (o.dense) {
    if (kind === "flm") throw new FlashError("BAD_ARGUMENT", "--dense runs a llama2.c checkpoint in memory; a .flm always runs from flash");
    model = await loadLlama2c(await readInputFile(modelPath, "model"), await readInputFile(tokPath!, "tokenizer"), { activation, contextLength: o.context });
    promptTokens = promptFits(model.tokenizer.encode(o.prompt, true, false), model.transformer.contextLength, o);
    log(`${modelPath}: dense, the whole model in memory (the reference path): WASM memory ${formatBytes(model.wasmMemoryBytes)}, ${model.transformer.contextLength} positions`);
  } else {
    if (kind === "llama2c") await requireFile(tokPath!, "tokenizer");
    // The shipped model at f32 comes with its predictors; any other type is converted (and kept) per type.
    const flashFile = shipped && !o.tokenizer && (dtype ?? "f32") === "f32" ? await shippedFlm(o.shipped ?? DEFAULT_SHIPPED, log) : kind === "flm" ? modelPath : await flmFor(modelPath, tokPath!, { dtype: containerDtype(dtype ?? "f32"), activation }, log);
    const sourceOptions = { direct: o.direct, maxInFlight: o.inFlight };
    source = o.reader === "thread" ? await ThreadedFileSource.open(flashFile, sourceOptions) : await NodeFileSource.open(flashFile, sourceOptions);
    try {
      const memoryBudget = o.memoryBudget === undefined ? undefined : parseBudget(o.memoryBudget, source.byteLength);
      // Encode the prompt once, with the file's tokenizer, before anything large is allocated: an
      // over-long prompt is refused here, and the KV cache is sized for what this run can reach.
      const file = await openFlm(source);
      const seqLen = file.manifest.config.seqLen;
      const tokenizer = parseTokenizer(file.manifest.tokenizer.kind, await file.readTokenizer(), file.manifest.config.vocabSize);
      promptTokens = promptFits(tokenizer.encode(o.prompt, true, false), Math.min(o.context ?? seqLen, seqLen), o);
      const contextLength = Math.min(o.context ?? promptTokens.length + o.maxTokens, seqLen);
      const common = { memoryBudget, strategy: o.strategy, window: o.window, contextLength, selector: o.selector, maxGapBytes: o.maxGap, verifyReads: o.verify, prefetch: o.prefetch };
      // A reader thread is one instance's way of using the second core; shards read on their own threads.
      const auto = o.workers === undefined || o.workers === "auto";
      const workers = o.reader === "thread" && auto ? 1 : parseWorkers(o.workers, source.byteLength, memoryBudget);
      if (workers > 1 && o.reader === "thread") throw new Error(`--reader thread runs one instance with its reads on a second thread; with --workers ${workers} each shard reads on its own thread already: leave out one of the two`);
      if (workers > 1) {
        model = await openFlashModel(source, { ...common, workers, shardHost: new NodeShardHost(flashFile, { direct: o.direct, maxInFlight: o.inFlight, threads: o.shardThreads }) });
        process.stderr.write(shardedBanner(flashFile, source.byteLength, memoryBudget, model as ShardedFlashModel, o) + "\n");
      } else {
        const kernels = o.reader === "thread" ? await Kernels.load(undefined, { sharedMemory: true }) : undefined;
        model = await openFlashModel(source, { ...common, kernels });
        process.stderr.write(banner(flashFile, source.byteLength, memoryBudget, model as FlashModel, o) + "\n");
      }
    } catch (e) {
      await source.close();
      throw e;
    }
  }

  const out = stdoutWatch();
  const interrupt = new AbortController();
  const onInt = () => interrupt.abort("interrupted");
  process.once("SIGINT", onInt);
  try {
    if (o.prompt) out.write(o.prompt);
    const signal = AbortSignal.any([interrupt.signal, out.signal]);
    for await (const t of model.generate(promptTokens, { maxTokens: o.maxTokens, temperature: o.temperature, topP: o.topP, seed: o.seed, signal })) {
      out.write(t.text);
    }
    out.write("\n");
    process.stderr.write((await anyStatsLine(model)) + "\n");
  } catch (e) {
    if (!(e instanceof AbortedError)) throw e;
    if (interrupt.signal.aborted) {
      out.write("\n");
      process.stderr.write(`[flashllm] interrupted\n${await anyStatsLine(model)}\n`);
      process.exitCode = EXIT_INTERRUPTED;
    }
    // Stdout closed: EPIPE ends quietly; other write errors were reported by the watch with exit code 1.
  } finally {
    process.off("SIGINT", onInt);
    await model.dispose();
    await source?.close();
  }
}

/** The prompt's tokens, or CONTEXT_OVERFLOW before any generation when they cannot fit. */
function promptFits(tokens: number[], context: number, o: RunOptions): number[] {
  if (tokens.length > context) {
    const hint = o.context !== undefined ? "a larger --context or " : "";
    throw new FlashError("CONTEXT_OVERFLOW", `the prompt is ${tokens.length} tokens but the context holds ${context}: use ${hint}a shorter prompt`, { promptTokens: tokens.length, contextLength: context });
  }
  return tokens;
}

/** What is being run and how the budget was split (the positions are those allocated). */
function banner(path: string, fileBytes: number, budget: number | undefined, model: FlashModel, o: RunOptions): string {
  const p = model.memoryPlan;
  const c = model.config;
  const selector = model.predictor ? `predictor (reads only the neurons it predicts active)` : "all (every neuron, every token)";
  return (
    `[flashllm] ${path}: ${formatBytes(fileBytes)}, ${c.activation} FFN; budget ${budget !== undefined ? `${formatBytes(budget)} (${((100 * budget) / fileBytes).toFixed(0)}% of the file)` : "unlimited"}: ` +
    `resident ${formatBytes(p.residentBytes)}, KV+activations ${formatBytes(p.stateBytes)} (${model.transformer.contextLength} positions), ` +
    `neuron cache ${formatBytes(p.cacheBytes)} (${p.capacity} of ${c.hiddenDim * c.nLayers} bundles); runtime overhead ${formatBytes(p.overheadBytes)} outside the budget; ` +
    `strategy ${o.strategy}, selector ${selector}, reads ${o.verify ? "CRC-verified" : "not verified (--no-verify)"}`
  );
}

/** The banner of a sharded model: the budget, then one line per shard (what it owns, its memory). */
function shardedBanner(path: string, fileBytes: number, budget: number | undefined, model: ShardedFlashModel, o: RunOptions): string {
  const c = model.config;
  const selector = model.file.manifest.predictor && o.selector !== "all" ? "predictor (reads only the neurons it predicts active)" : "all (every neuron, every token)";
  return (
    `[flashllm] ${path}: ${formatBytes(fileBytes)}, ${c.activation} FFN; budget ${budget !== undefined ? `${formatBytes(budget)} (${((100 * budget) / fileBytes).toFixed(0)}% of the file)` : "unlimited"}, ` +
    `${model.transformer.contextLength} positions, strategy ${o.strategy}, selector ${selector}, reads ${o.verify ? "CRC-verified" : "not verified (--no-verify)"}; ` +
    `${model.workers} shards on ${Math.min(model.workers, shardThreads(o.shardThreads))} threads (shard i on thread i mod that; thread 0 is this one)\n` +
    shardMemoryLines(model).map((l) => `[flashllm]   ${l}`).join("\n")
  );
}

async function anyStatsLine(model: LanguageModel): Promise<string> {
  return model instanceof ShardedFlashModel ? shardedStatsLine(model) : statsLine(model);
}

/** The stats line of a sharded model: the shards' reads summed, each shard's time split, every WASM memory. */
export async function shardedStatsLine(model: ShardedFlashModel): Promise<string> {
  const s = model.lastStats!;
  const figures = await model.shardFigures();
  const f = sumShardStats(figures);
  const t = Math.max(f.tokens, 1);
  const c = model.config;
  const ffnBytes = model.file.manifest.ffn.bundleStride * c.hiddenDim * c.nLayers;
  const what = f.activeNeurons < t * c.hiddenDim * c.nLayers ? "sparse: predicted neurons from flash" : "every neuron from flash";
  const parts = [
    `${s.generatedTokens} tokens`,
    `${s.tokensPerSecond.toFixed(1)} tok/s on ${model.workers} workers`,
    `read ${formatBytes(f.bytesRead / t)}/token (${((100 * f.bytesRead) / t / ffnBytes).toFixed(1)}% of the FFN) in ${(f.readRequests / t).toFixed(1)} reads (mean ${formatBytes(f.bytesRead / Math.max(f.readRequests, 1))})`,
    `neurons used ${((100 * f.activeNeurons) / t / (c.hiddenDim * c.nLayers)).toFixed(1)}%, cache hit ${((100 * f.cacheHits) / Math.max(f.activeNeurons, 1)).toFixed(1)}%`,
    ...figures.map((g) => `shard ${g.index} per token: I/O ${(g.stats.ioMs / t).toFixed(2)} ms, memory ${(g.stats.memoryMs / t).toFixed(2)} ms, FFN compute ${(g.stats.computeMs / t).toFixed(2)} ms`),
    `peak RSS ${formatBytes(peakRssBytes())}`,
    `WASM memory ${formatBytes(model.wasmMemoryBytes)} + ${figures.map((g) => formatBytes(g.memoryBytes)).join(" + ")}`,
  ];
  return `[stats] ${what}: ${parts.join(", ")}`;
}

/** One line of figures: speed, then (flash) I/O per token, hit rate and the time split, then memory. */
export function statsLine(model: LanguageModel): string {
  const s = model.lastStats!;
  const flash = (model as FlashModel).flash;
  // What the figures describe: the sparse method, every neuron from flash, or the in-memory reference.
  const what = !flash ? "dense in memory" : (model as FlashModel).predictor ? "sparse: predicted neurons from flash" : "every neuron from flash";
  const parts = [what, `${s.generatedTokens} tokens`, `${s.tokensPerSecond.toFixed(1)} tok/s`];
  if (flash) {
    const f = flash.stats;
    const t = Math.max(f.tokens, 1);
    const c = model.config;
    const ffnBytes = (model as FlashModel).file.manifest.ffn.bundleStride * c.hiddenDim * c.nLayers;
    parts.push(
      `read ${formatBytes(f.bytesRead / t)}/token (${((100 * f.bytesRead) / t / ffnBytes).toFixed(1)}% of the FFN) in ${(f.readRequests / t).toFixed(1)} reads (mean ${formatBytes(f.bytesRead / Math.max(f.readRequests, 1))})`,
      `neurons used ${((100 * f.activeNeurons) / t / (c.hiddenDim * c.nLayers)).toFixed(1)}%, cache hit ${((100 * f.cacheHits) / Math.max(f.activeNeurons, 1)).toFixed(1)}%`,
      `per token: I/O ${(f.ioMs / t).toFixed(2)} ms, memory ${(f.memoryMs / t).toFixed(2)} ms, FFN compute ${(f.computeMs / t).toFixed(2)} ms`,
    );
  }
  const overhead = (model as FlashModel).memoryPlan?.overheadBytes;
  parts.push(`peak RSS ${formatBytes(peakRssBytes())}`, `WASM memory ${formatBytes(model.wasmMemoryBytes)}${overhead !== undefined ? ` (runtime overhead ${formatBytes(overhead)} of it)` : ""}`);
  return `[stats] ${parts[0]}: ${parts.slice(1).join(", ")}`;
}
