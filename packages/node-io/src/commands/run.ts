import { readFile } from "node:fs/promises";
import { loadLlama2c } from "@flashllm/sdk";
import { formatBytes, peakRssBytes } from "../format-stats.js";
import { DEFAULT_MODEL, DEFAULT_TOKENIZER } from "../paths.js";

export interface RunOptions {
  model?: string;
  tokenizer?: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed?: number;
  activation: "silu" | "relu";
}

/** `flashllm run`: streams the generated text, then one line of figures. */
export async function runCommand(o: RunOptions): Promise<void> {
  const modelPath = o.model ?? DEFAULT_MODEL;
  const tokPath = o.tokenizer ?? (o.model ? undefined : DEFAULT_TOKENIZER);
  if (!tokPath) throw new Error("a llama2.c checkpoint needs --tokenizer <tok.bin>");
  const model = await loadLlama2c(await readFile(modelPath), await readFile(tokPath), { activation: o.activation });
  const ac = new AbortController();
  process.once("SIGINT", () => ac.abort("interrupted"));
  if (o.prompt) process.stdout.write(o.prompt);
  for await (const t of model.generate(o.prompt, {
    maxTokens: o.maxTokens,
    temperature: o.temperature,
    topP: o.topP,
    seed: o.seed,
    signal: ac.signal,
  })) {
    process.stdout.write(t.text);
  }
  const s = model.lastStats!;
  process.stdout.write("\n");
  process.stderr.write(
    `[stats] ${s.generatedTokens} tokens, ${s.tokensPerSecond.toFixed(1)} tok/s, prompt ${s.promptTokens} tokens in ${s.promptMs.toFixed(1)} ms, ` +
      `peak RSS ${formatBytes(peakRssBytes())}, WASM memory ${formatBytes(model.wasmMemoryBytes)}\n`,
  );
  await model.dispose();
}
