#!/usr/bin/env node
import { createRequire } from "node:module";
import { Command, InvalidArgumentError, Option } from "commander";
import { convertCommand } from "./commands/convert.js";
import { inspectCommand } from "./commands/inspect.js";
import { runCommand } from "./commands/run.js";
import { synthCommand } from "./commands/synth.js";
import { benchCommand } from "./commands/bench.js";
import { peerBenchCommand } from "./commands/bench-peer.js";
import { calibrateCommand } from "./commands/calibrate.js";
import { evalCommand } from "./commands/eval.js";
import { serveCommand } from "./commands/serve.js";
import { cacheDir } from "./model-files.js";
import { stdoutWatch } from "./output.js";
import { SHIPPED_NAMES } from "./shipped.js";
import { CLI_DTYPES } from "./dtypes.js";

stdoutWatch(); // before any output: a closed pipe must not become an uncaught EPIPE
const { version } = createRequire(import.meta.url)("../package.json") as { version: string };

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
  return n;
};
const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be an integer ≥ 1`);
  return n;
};
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};

/** Bundle stride alignment: a power of two from 16 to 64 KiB (O_DIRECT needs 4096; more only pads the file). */
const MAX_BUNDLE_ALIGN = 64 * 1024;
const bundleAlign = (v: string) => {
  const n = Number(v);
  if (!(Number.isInteger(n) && n >= 16 && n <= MAX_BUNDLE_ALIGN && (n & (n - 1)) === 0)) {
    throw new InvalidArgumentError(`--bundle-align must be a power of two from 16 to ${MAX_BUNDLE_ALIGN} bytes (4096 lets O_DIRECT read single bundles in place; more only pads the file)`);
  }
  return n;
};

const program = new Command()
  .name("flashllm")
  .description("Run language models larger than memory: FFN weights streamed from storage.")
  .version(version, "-V, --version")
  .showHelpAfterError()
  .addHelpText(
    "after",
    `\nEnvironment:\n  FLASHLLM_CACHE  folder for models converted on first use (now: ${cacheDir()}; default ~/.cache/flashllm)`,
  );

program
  .command("run")
  .description("generate text (without --model: the shipped stories260K-relu with sparsity predictors, prepared on first use)")
  .option("-m, --model <path>", "flashllm container (.flm) or llama2.c checkpoint (.bin); the kind is read from the file")
  .addOption(new Option("--shipped <name>", "a shipped model instead of --model: stories260K-relu (sparse, with predictors; the default) or stories260K (SwiGLU: every neuron, every token)").choices([...SHIPPED_NAMES]))
  .option("-z, --tokenizer <path>", "llama2.c tokenizer (.bin) for a .bin checkpoint")
  .option("-i, --prompt <text>", "prompt", "")
  .option("-n, --max-tokens <n>", "new tokens to generate", int("--max-tokens"), 200)
  .option("-t, --temperature <t>", "0 = greedy", num("--temperature"), 0.8)
  .option("-p, --top-p <p>", "nucleus sampling threshold; outside (0,1) disables", num("--top-p"), 0.9)
  .option("-s, --seed <n>", "RNG seed, an integer ≥ 0 (default: time)", int("--seed"))
  .option("-b, --memory-budget <size>", "hard limit on model memory: a share of the .flm file (50%) or bytes (600KiB)")
  .addOption(new Option("--strategy <s>", "how neurons reach memory").choices(["naive", "bundled", "windowed"]).default("windowed"))
  .option("--window <k>", "tokens a used neuron stays protected in the cache", int("--window"), 4)
  .addOption(new Option("--selector <s>", "which neurons to read: all, or the file's predictors (default when it has them)").choices(["all", "predictor"]))
  .option("--max-gap <bytes>", "largest gap read to merge two requests", int("--max-gap"), 32768)
  .option("--context <n>", "KV cache positions (default: what prompt + max tokens can reach)", int("--context"))
  .option("--dtype <d>", `weights type when converting a .bin, as \`convert --dtype\`: ${CLI_DTYPES.join(", ")} (default f32; each type's conversion is kept)`)
  .addOption(new Option("--activation <a>", "FFN activation of a llama2.c checkpoint (the format does not record it)").choices(["silu", "relu"]).default("silu"))
  .option("--direct", "read with O_DIRECT (bypass the page cache)", false)
  .option("--in-flight <n>", "reads in flight", int("--in-flight"), 8)
  .option("--prefetch", "read the next layer's predicted neurons while this layer computes (the trained lookahead of a calibrated file; windowed strategy; default: on with --workers > 1, off with one instance)")
  .option("--no-prefetch", "do not read ahead, also with --workers > 1")
  .addOption(new Option("--reader <where>", "where reads run with one instance: inline (this thread) or thread (a reader thread filling a shared WASM memory while this thread computes)").choices(["inline", "thread"]).default("inline"))
  .option("--dense", "load a llama2.c checkpoint wholly into memory instead (the reference path)", false)
  .option("-w, --workers <k>", "shards: an integer, or auto (with a budget below the file: 1 when it fits one wasm32 memory, else enough shards for it; with no budget or one that holds the file: one per core when each holds ≥ 64 MiB; 1 with --reader thread). Shard 0 computes on this thread", "auto")
  .option("--shard-threads <n>", "with --workers K: threads the shards run on (default: the cores; shard i on thread i mod n, thread 0 this one)", positiveInt("--shard-threads"))
  .option("--no-verify", "skip checking each bundle read against the file's CRC-32 (a corrupted file then gives wrong text, not an error)")
  .addHelpText("after", "\nA llama2.c checkpoint is converted to .flm on first use and kept in $FLASHLLM_CACHE (default ~/.cache/flashllm).")
  .action((opts) => runCommand(opts));

program
  .command("convert")
  .description("convert a GGUF file, a llama2.c checkpoint or a Hugging Face folder into a .flm container")
  .argument("<checkpoint>", "GGUF file (any name: recognised by its magic), llama2.c checkpoint (.bin), or a Hugging Face Llama folder (config.json + model.safetensors)")
  .argument("<out>", "output .flm file")
  .option("-z, --tokenizer <path>", "tokenizer: llama2.c .bin or tokenizer.json (not needed for GGUF: it carries its own)")
  .addOption(new Option("--dtype <d>", "weights type: f32, q8 (int8 + scale per row), q8_0 / q4 (ggml blocks of 32), f16; keep = the file's own (GGUF Q8_0/Q4_0/F16 kept as they are; llama2.c and HF: f32)").choices(["keep", ...CLI_DTYPES]).default("keep"))
  .addOption(new Option("--activation <a>", "FFN activation (the llama2.c format does not record it)").choices(["silu", "relu"]).default("silu"))
  .option("--bundle-align <n>", "bundle stride alignment in bytes, a power of two from 16 to 65536 (4096 lets O_DIRECT read single bundles in place)", bundleAlign, 16)
  .addOption(new Option("--wo-layout <l>", "output projection: heads = head-major, so a shard reads only its heads' columns (container v2); rows = row-major, a v1 file older readers open").choices(["heads", "rows"]).default("heads"))
  .action((input, out, opts) => convertCommand(input, out, opts));

program
  .command("inspect")
  .description("print a .flm file's manifest and sizes and verify its checksums; or what a GGUF file holds and whether flashllm can run it")
  .argument("<file>", ".flm or GGUF file")
  .option("--json", "print the manifest as JSON", false)
  .option("-b, --memory-budget <size>", "GGUF: plan memory for this budget (a share of the converted file, 50%, or bytes)")
  .addOption(new Option("--dtype <d>", "GGUF: container type to estimate for").choices(["keep", ...CLI_DTYPES]).default("keep"))
  .option("--no-verify", "skip checksum verification")
  .action((file, opts) => inspectCommand(file, opts));

program
  .command("calibrate")
  .description("train sparsity predictors on a corpus and write a copy of the .flm with them")
  .argument("<model>", ".flm file")
  .requiredOption("--corpus <text>", "calibration text (UTF-8; stories separated by <|endoftext|> or blank lines)")
  .option("-o, --out <file>", "output .flm (default: <model>-pred.flm)")
  .option("--rank <r>", "predictor rank per layer (default: max(64, dim/4))", int("--rank"))
  .option("--recall <r>", "share of truly active neurons each layer must keep on unseen text", num("--recall"), 0.95)
  .option("--recall-margin <m>", "thresholds are chosen for recall + margin on the held-out calibration split", num("--recall-margin"), 0.01)
  .option("--positions <n>", "token positions to record", int("--positions"), 16000)
  .option("--epochs <n>", "training passes", int("--epochs"), 6)
  .option("--keep-norm <s>", "SwiGLU: neurons count as active while they hold this share of the activation norm", num("--keep-norm"), 0.95)
  .option("--text-offset <bytes>", "start reading the corpus here", int("--text-offset"), 0)
  .option("--text-bytes <bytes>", "read at most this many bytes", int("--text-bytes"))
  .option("--no-reorder", "keep the neurons' storage order (default: store neurons that fire together next to each other)")
  .option("--no-lookahead", "skip training the lookahead (layer l+1's neurons from layer l's input) that prefetch reads ahead with")
  .action((model, opts) => calibrateCommand(model, opts));

program
  .command("eval")
  .description("dense vs sparse on held-out text: loss, top-1 agreement, per-layer recall/precision, greedy agreement")
  .argument("<model>", ".flm file (with predictors for --selector predictor)")
  .requiredOption("--text <file>", "held-out text not used for calibration")
  .addOption(new Option("--selector <s>", "which selection to measure").choices(["predictor", "exact", "hot"]).default("predictor"))
  .option("--hot-text <file>", "for --selector hot: text to count neuron activity on")
  .option("--hot-bytes <n>", "bytes of --hot-text to read", int("--hot-bytes"), 300000)
  .option("--positions <n>", "teacher-forced positions to score", int("--positions"), 3000)
  .option("--keep-norm <s>", "SwiGLU truth: share of the activation norm", num("--keep-norm"), 0.95)
  .option("--text-offset <bytes>", "start reading the text here", int("--text-offset"), 0)
  .option("--text-bytes <bytes>", "read at most this many bytes", int("--text-bytes"))
  .option("--json", "print the report as JSON", false)
  .option("-w, --workers <k>", "shard workers for the sparse model (predictor only; the dense reference stays one instance)", int("--workers"), 1)
  .action((model, opts) => evalCommand(model, opts));

program
  .command("synth")
  .description("write a .flm with the exact shape of a published model and random q8 weights (for benchmarks at scale)")
  .addOption(new Option("--shape <s>", "model shape").choices(["llama-2-7b", "llama-2-13b", "llama-33b", "opt-6.7b"]).default("llama-2-7b"))
  .requiredOption("-o, --out <file>", "output .flm")
  .option("--layers <n>", "fewer layers (same per-layer shapes)", int("--layers"))
  .option("--vocab <n>", "another vocabulary size", int("--vocab"))
  .option("--seed <n>", "PRNG seed", int("--seed"), 1)
  .option("--bundle-align <n>", "bundle stride alignment in bytes, a power of two from 16 to 65536", bundleAlign, 16)
  .addOption(new Option("--wo-layout <l>", "output projection: heads = head-major, so a shard reads only its heads' columns (container v2); rows = row-major, a v1 file older readers open").choices(["heads", "rows"]).default("heads"))
  .action((opts) => synthCommand(opts));

program
  .command("bench")
  .description("naive vs bundled vs windowed vs windowed+bundled (+lookahead) on one model, cold storage, with fio as the yardstick")
  .option("-m, --model <path>", "an existing .flm (default: synthesize one of --shape)")
  .addOption(new Option("--shape <s>", "model shape to synthesize").choices(["llama-2-7b", "llama-2-13b", "llama-33b", "opt-6.7b"]).default("llama-2-7b"))
  .option("--full", "the full shape (default: 4 layers and a 4000-token vocabulary, same per-layer shapes)", false)
  .option("--layers <n>", "layers of the synthesized model", int("--layers"))
  .option("--vocab <n>", "vocabulary of the synthesized model", int("--vocab"))
  .option("-b, --memory-budget <size>", "memory budget: share of the .flm (50%) or bytes", "50%")
  .addOption(new Option("--trace <preset>", "activation trace preset").choices(["opt-6.7b-paper", "relu-tinystories"]).default("opt-6.7b-paper"))
  .option("--active <f>", "override: fraction of neurons active per token", num("--active"))
  .option("--overlap <f>", "override: share of a token's set active for the previous token", num("--overlap"))
  .option("--skew <s>", "override: Zipf exponent of neuron hotness", num("--skew"))
  .option("--coactivation <c>", "override: how clustered a token's new neurons are in storage, in [0, 1) (0: stored in no particular order; presets: fitted to calibrate's co-activation order)", num("--coactivation"))
  .option("--lookahead-recall <r>", "share of the next layer's set the lookahead names", num("--lookahead-recall"), 1)
  .addOption(new Option("--selector <s>", "trace: the activation trace on random tokens; predictor: a calibrated --model's own predictors and lookahead on a fixed story").choices(["trace", "predictor"]).default("trace"))
  .option("--window <k>", "window (tokens)", int("--window"), 5)
  .option("--tokens <n>", "measured tokens per variant", int("--tokens"), 16)
  .option("--warmup <n>", "unmeasured tokens first (fill the window and the neuron cache: the bench says when they did not)", int("--warmup"), 12)
  .option("--in-flight <n>", "reads in flight", int("--in-flight"), 32)
  .option("--no-direct", "buffered reads (the file is still evicted before each variant)")
  .option("--no-fio", "skip the fio comparison")
  .option("--variants <list>", "comma list of naive,naive-active,bundled,windowed,windowed+bundled,lookahead,memory")
  .option("--out-dir <dir>", "where results (and a synthesized model) go", ".cache/bench")
  .option("--seed <n>", "seed of weights and trace", int("--seed"), 1)
  .option("--queue <n>", "reads the file source submits at once (default: --in-flight); libuv runs --in-flight of them", int("--queue"))
  .option("--max-gap <bytes>", "merge two runs of missing neurons across a gap of up to this many bytes", int("--max-gap"), 32 * 1024)
  .addOption(new Option("--reader <where>", "where reads run: thread (a reader thread filling a shared WASM memory while this thread computes) or inline (this thread)").choices(["thread", "inline"]).default("inline"))
  .option("-w, --workers <k>", "shard workers (1: one instance; K > 1: the sharded engine, variants windowed+bundled, lookahead, bundled, naive, memory)", int("--workers"), 1)
  .option("--no-first-shard-here", "with --workers K: every shard in a worker thread (K + 1 threads) instead of shard 0 on this thread")
  .option("--shard-threads <n>", "with --workers K: threads the shards run on (default: the cores; shard i on thread i mod n)", positiveInt("--shard-threads"))
  .addOption(new Option("--peer <engine>", "also run a peer on the same shape in the same run: llama.cpp (node-llama-cpp 3.21.1, a GGUF Q8_0 of the shape, dense, mmap)").choices(["llama.cpp"]))
  .option("--gguf <path>", "--peer: the GGUF file (default: written next to the .flm)")
  .option("--conditions <list>", "--peer: cached (GGUF in the page cache), squeezed (less memory free than the GGUF)", "cached,squeezed")
  .option("--peer-tokens <n>", "--peer: tokens llama.cpp generates per condition", int("--peer-tokens"), 8)
  .option("--threads <n>", "--peer: llama.cpp threads (default: every core)", int("--threads"))
  .option("--sides <list>", "--peer: which engines run (flashllm,llama.cpp); one alone when the disk cannot hold both files", "flashllm,llama.cpp")
  .action((opts) => {
    if (!opts.peer) return benchCommand(opts);
    // The flashllm side is this same command without --peer, in a child process (its own libuv and heap).
    const pass = ["--warmup", String(opts.warmup), "--in-flight", String(opts.inFlight), "--trace", opts.trace, "--window", String(opts.window), "--max-gap", String(opts.maxGap), "--reader", opts.reader, ...(opts.direct ? [] : ["--no-direct"]), ...(opts.shardThreads ? ["--shard-threads", String(opts.shardThreads)] : [])];
    // Trace overrides reach the flashllm side too (`--active 1`: every neuron, dense against dense).
    for (const [flag, v] of [["--active", opts.active], ["--overlap", opts.overlap], ["--skew", opts.skew], ["--coactivation", opts.coactivation]] as const) if (v !== undefined) pass.push(flag, String(v));
    return peerBenchCommand({
      shape: opts.shape, model: opts.model, gguf: opts.gguf, outDir: opts.outDir, memoryBudget: opts.memoryBudget, tokens: opts.tokens, peerTokens: opts.peerTokens,
      workers: opts.workers, variants: opts.variants ?? "windowed+bundled", conditions: opts.conditions, threads: opts.threads, seed: opts.seed, sides: opts.sides, benchArgs: pass,
    });
  });

program
  .command("serve")
  .description("an OpenAI-compatible HTTP server for one model: /v1/models, /v1/completions, /v1/chat/completions (streaming too)")
  .argument("<model>", "flashllm container (.flm) or llama2.c checkpoint (.bin, with --tokenizer)")
  .option("-z, --tokenizer <path>", "llama2.c tokenizer (.bin) for a .bin checkpoint")
  .option("-b, --memory-budget <size>", "hard limit on model memory: a share of the .flm file (50%) or bytes (600KiB)")
  .option("--host <addr>", "address to bind (only this machine by default)", "127.0.0.1")
  .option("--port <n>", "port (0: a free one; the URL is printed on stdout)", int("--port"), 8080)
  .option("--workers <k>", "shards: an integer, or auto (as run: 1 when a budget below the file fits one wasm32 memory; one per core, ≥ 64 MiB each, when the model is held whole)", "auto")
  .option("--api-key <key>", "require Authorization: Bearer <key> (default: $FLASHLLM_API_KEY, else none)")
  .option("--model-name <id>", "the model's id in the API (default: the file name without extension)")
  .option("--context <n>", "KV cache positions (default: the model's)", int("--context"))
  .option("--chat-template <file>", "a Jinja chat template to use instead of the model's")
  .option("--max-queue <n>", "requests that may wait for the model; more get 429", int("--max-queue"), 16)
  .option("--max-body <size>", "largest request body", "1MiB")
  .option("--direct", "read with O_DIRECT (bypass the page cache)", false)
  .option("--in-flight <n>", "reads in flight", int("--in-flight"), 8)
  .addOption(new Option("--dtype <d>", "weights type when converting a .bin, as `convert --dtype`").choices([...CLI_DTYPES]).default("f32"))
  .addOption(new Option("--activation <a>", "FFN activation of a llama2.c checkpoint").choices(["silu", "relu"]).default("silu"))
  .action((model, opts) => serveCommand(model, opts));
/** SDK option names in messages, as the flags a CLI user types. */
const FLAG_NAMES: [RegExp, string][] = [
  [/\bcontextLength\b/g, "--context"],
  [/\bmemoryBudget\b/g, "--memory-budget"],
  [/\bmaxTokens\b/g, "--max-tokens"],
  [/\btopP\b/g, "--top-p"],
  [/\bmaxInFlight\b/g, "--in-flight"],
  [/\bmaxGapBytes\b/g, "--max-gap"],
  [/\bbundleAlignment\b/g, "--bundle-align"],
];
const inCliWords = (m: string) => FLAG_NAMES.reduce((t, [re, flag]) => t.replace(re, flag), m);

program.parseAsync(process.argv).catch((e: unknown) => {
  // Stdout went away: EPIPE ends quietly, other write errors were reported where they happened.
  if (stdoutWatch().closed) return;
  const err = e as { name?: string; code?: string; message?: string };
  process.stderr.write(`flashllm: ${err.name ?? "Error"}${err.code ? ` [${err.code}]` : ""}: ${inCliWords(err.message ?? String(e))}\n`);
  process.exitCode = 1;
});
