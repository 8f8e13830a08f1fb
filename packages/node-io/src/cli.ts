#!/usr/bin/env node
import { Command, InvalidArgumentError } from "commander";
import { runCommand } from "./commands/run.js";

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer`);
    return n;
  };
}
function num(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
    return n;
  };
}

const program = new Command()
  .name("flashllm")
  .description("Run language models larger than memory: FFN weights streamed from storage.")
  .showHelpAfterError();

program
  .command("run")
  .description("generate text (without --model: the shipped stories260K model)")
  .option("-m, --model <path>", "llama2.c checkpoint (.bin) or flashllm container (.flm)")
  .option("-z, --tokenizer <path>", "llama2.c tokenizer (.bin) for a .bin checkpoint")
  .option("-i, --prompt <text>", "prompt", "")
  .option("-n, --max-tokens <n>", "new tokens to generate", int("--max-tokens"), 256)
  .option("-t, --temperature <t>", "0 = greedy", num("--temperature"), 0.8)
  .option("-p, --top-p <p>", "nucleus sampling threshold; outside (0,1) disables", num("--top-p"), 0.9)
  .option("-s, --seed <n>", "RNG seed (default: time)", int("--seed"))
  .option("--activation <act>", "FFN activation for llama2.c checkpoints (silu|relu): the format does not record it", "silu")
  .action(async (opts) => {
    await runCommand(opts);
  });

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as { name?: string; code?: string; message?: string };
  process.stderr.write(`flashllm: ${err.name ?? "Error"}${err.code ? ` [${err.code}]` : ""}: ${err.message ?? String(e)}\n`);
  process.exitCode = 1;
});
