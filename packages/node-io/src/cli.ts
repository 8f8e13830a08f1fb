#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from "commander";
import { convertCommand } from "./commands/convert.js";
import { inspectCommand } from "./commands/inspect.js";
import { runCommand } from "./commands/run.js";
import { synthCommand } from "./commands/synth.js";
import { benchCommand } from "./commands/bench.js";
import { calibrateCommand } from "./commands/calibrate.js";
import { evalCommand } from "./commands/eval.js";

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
  return n;
};
const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};

const program = new Command()
  .name("flashllm")
  .description("Run language models larger than memory: FFN weights streamed from storage.")
  .showHelpAfterError();

program
  .command("run")
  .description("generate text (without --model: the shipped stories260K model, converted to .flm on first use)")
  .option("-m, --model <path>", "flashllm container (.flm) or llama2.c checkpoint (.bin)")
  .option("-z, --tokenizer <path>", "llama2.c tokenizer (.bin) for a .bin checkpoint")
  .option("-i, --prompt <text>", "prompt", "")
  .option("-n, --max-tokens <n>", "new tokens to generate", int("--max-tokens"), 200)
  .option("-t, --temperature <t>", "0 = greedy", num("--temperature"), 0.8)
  .option("-p, --top-p <p>", "nucleus sampling threshold; outside (0,1) disables", num("--top-p"), 0.9)
  .option("-s, --seed <n>", "RNG seed (default: time)", int("--seed"))
  .option("-b, --memory-budget <size>", "hard limit on model memory: a share of the .flm file (50%) or bytes (600KiB)")
  .addOption(new Option("--strategy <s>", "how neurons reach memory").choices(["naive", "bundled", "windowed"]).default("windowed"))
  .option("--window <k>", "tokens a used neuron stays protected in the cache", int("--window"), 4)
  .addOption(new Option("--selector <s>", "which neurons to read: all, or the file's predictors (default when it has them)").choices(["all", "predictor"]))
  .option("--max-gap <bytes>", "largest gap read to merge two requests", int("--max-gap"), 32768)
  .option("--context <n>", "KV cache positions (default: what prompt + max tokens can reach)", int("--context"))
  .addOption(new Option("--dtype <d>", "weights type when converting a .bin").choices(["f32", "q8"]).default("f32"))
  .addOption(new Option("--activation <a>", "FFN activation of a llama2.c checkpoint (the format does not record it)").choices(["silu", "relu"]).default("silu"))
  .option("--direct", "read with O_DIRECT (bypass the page cache)", false)
  .option("--in-flight <n>", "reads in flight", int("--in-flight"), 8)
  .option("--dense", "load a llama2.c checkpoint wholly into memory instead (the reference path)", false)
  .action((opts) => runCommand(opts));

program
  .command("convert")
  .description("convert a GGUF file, a llama2.c checkpoint or a Hugging Face folder into a .flm container")
  .argument("<checkpoint>", "GGUF file (any name: recognised by its magic), llama2.c checkpoint (.bin), or a Hugging Face Llama folder (config.json + model.safetensors)")
  .argument("<out>", "output .flm file")
  .option("-z, --tokenizer <path>", "tokenizer: llama2.c .bin or tokenizer.json (not needed for GGUF: it carries its own)")
  .addOption(new Option("--dtype <d>", "weights type: f32, q8 (int8 + scale per row), q8_0 / q4 (ggml blocks of 32), f16; keep = the file's own (GGUF Q8_0/Q4_0/F16 kept as they are; llama2.c and HF: f32)").choices(["keep", "f32", "q8", "q8_0", "q4", "f16"]).default("keep"))
  .addOption(new Option("--activation <a>", "FFN activation (the llama2.c format does not record it)").choices(["silu", "relu"]).default("silu"))
  .option("--bundle-align <n>", "bundle stride alignment in bytes (4096 lets O_DIRECT read single bundles in place)", int("--bundle-align"), 16)
  .action((input, out, opts) => convertCommand(input, out, opts));

program
  .command("inspect")
  .description("print a .flm file's manifest and sizes and verify its checksums; or what a GGUF file holds and whether flashllm can run it")
  .argument("<file>", ".flm or GGUF file")
  .option("--json", "print the manifest as JSON", false)
  .option("-b, --memory-budget <size>", "GGUF: plan memory for this budget (a share of the converted file, 50%, or bytes)")
  .addOption(new Option("--dtype <d>", "GGUF: container type to estimate for").choices(["keep", "f32", "q8", "q8_0", "q4", "f16"]).default("keep"))
  .option("--no-verify", "skip checksum verification")
  .action((file, opts) => inspectCommand(file, opts));

program
  .command("calibrate")
  .description("train sparsity predictors on a corpus and write a copy of the .flm with them")
  .argument("<model>", ".flm file")
  .requiredOption("--corpus <text>", "calibration text (UTF-8; stories separated by <|endoftext|> or blank lines)")
  .option("-o, --out <file>", "output .flm (default: <model>-pred.flm)")
  .option("--rank <r>", "predictor rank per layer", int("--rank"), 32)
  .option("--recall <r>", "share of truly active neurons each layer must keep", num("--recall"), 0.95)
  .option("--positions <n>", "token positions to record", int("--positions"), 8000)
  .option("--epochs <n>", "training passes", int("--epochs"), 8)
  .option("--keep-norm <s>", "SwiGLU: neurons count as active while they hold this share of the activation norm", num("--keep-norm"), 0.95)
  .option("--text-offset <bytes>", "start reading the corpus here", int("--text-offset"), 0)
  .option("--text-bytes <bytes>", "read at most this many bytes", int("--text-bytes"))
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
  .action((model, opts) => evalCommand(model, opts));

program
  .command("synth")
  .description("write a .flm with the exact shape of a published model and random q8 weights (for benchmarks at scale)")
  .addOption(new Option("--shape <s>", "model shape").choices(["llama-2-7b", "opt-6.7b"]).default("llama-2-7b"))
  .requiredOption("-o, --out <file>", "output .flm")
  .option("--layers <n>", "fewer layers (same per-layer shapes)", int("--layers"))
  .option("--vocab <n>", "another vocabulary size", int("--vocab"))
  .option("--seed <n>", "PRNG seed", int("--seed"), 1)
  .option("--bundle-align <n>", "bundle stride alignment in bytes", int("--bundle-align"), 16)
  .action((opts) => synthCommand(opts));

program
  .command("bench")
  .description("naive vs bundled vs windowed vs windowed+bundled (+lookahead) on one model, cold storage, with fio as the yardstick")
  .option("-m, --model <path>", "an existing .flm (default: synthesize one of --shape)")
  .addOption(new Option("--shape <s>", "model shape to synthesize").choices(["llama-2-7b", "opt-6.7b"]).default("llama-2-7b"))
  .option("--full", "the full shape (default: 4 layers and a 4000-token vocabulary, same per-layer shapes)", false)
  .option("--layers <n>", "layers of the synthesized model", int("--layers"))
  .option("--vocab <n>", "vocabulary of the synthesized model", int("--vocab"))
  .option("-b, --memory-budget <size>", "memory budget: share of the .flm (50%) or bytes", "50%")
  .addOption(new Option("--trace <preset>", "activation trace preset").choices(["opt-6.7b-paper", "relu-tinystories"]).default("opt-6.7b-paper"))
  .option("--active <f>", "override: fraction of neurons active per token", num("--active"))
  .option("--overlap <f>", "override: share of a token's set active for the previous token", num("--overlap"))
  .option("--skew <s>", "override: Zipf exponent of neuron hotness", num("--skew"))
  .option("--lookahead-recall <r>", "share of the next layer's set the lookahead names", num("--lookahead-recall"), 1)
  .option("--window <k>", "window (tokens)", int("--window"), 5)
  .option("--tokens <n>", "measured tokens per variant", int("--tokens"), 16)
  .option("--warmup <n>", "unmeasured tokens first (fill the window)", int("--warmup"), 6)
  .option("--in-flight <n>", "reads in flight", int("--in-flight"), 32)
  .option("--no-direct", "buffered reads (the file is still evicted before each variant)")
  .option("--no-fio", "skip the fio comparison")
  .option("--variants <list>", "comma list of naive,bundled,windowed,windowed+bundled,lookahead,memory")
  .option("--out-dir <dir>", "where results (and a synthesized model) go", ".cache/bench")
  .option("--seed <n>", "seed of weights and trace", int("--seed"), 1)
  .option("--queue <n>", "reads the file source submits at once (default: --in-flight); libuv runs --in-flight of them", int("--queue"))
  .option("--max-gap <bytes>", "merge two runs of missing neurons across a gap of up to this many bytes", int("--max-gap"), 32 * 1024)
  .action((opts) => benchCommand(opts));

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as { name?: string; code?: string; message?: string };
  process.stderr.write(`flashllm: ${err.name ?? "Error"}${err.code ? ` [${err.code}]` : ""}: ${err.message ?? String(e)}\n`);
  process.exitCode = 1;
});
