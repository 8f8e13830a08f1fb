import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

/** What one llama.cpp run measured (see {@link measureLlamaCpp}). */
export interface LlamaCppResult {
  ok: boolean;
  /** Why it could not run (binary missing, file refused), when `ok` is false. */
  reason?: string;
  loadMs: number;
  /** Prompt evaluation up to the first generated token, ms. */
  promptMs: number;
  /** Time of each generated token after the first, ms. */
  tokenMs: number[];
  /** The greedy tokens (the first is the prompt's continuation). */
  tokens: number[];
  /** Peak resident memory of the llama.cpp process (its mmap'd weights included), bytes. */
  maxRssBytes: number;
  threads: number;
}

export interface LlamaCppOptions {
  gguf: string;
  /** CPU threads (default: the caller passes the number of cores). */
  threads: number;
  /** Prompt token ids (BOS included: node-llama-cpp does not add it). */
  promptTokens: number[];
  /** Tokens to generate greedily. */
  tokens: number;
  contextSize?: number;
}

/**
 * Runs node-llama-cpp (llama.cpp, mmap, dense, CPU) on a GGUF file in a child process and times its
 * greedy tokens: the peer of `flashllm bench --peer llama.cpp`. Never throws for a missing or
 * unloadable binary: `ok: false` with the reason.
 */
export function measureLlamaCpp(opts: LlamaCppOptions): Promise<LlamaCppResult> {
  const child = join(dirname(fileURLToPath(import.meta.url)), "peer-llama-cpp.js");
  const input = JSON.stringify({ contextSize: Math.max(64, opts.promptTokens.length + opts.tokens + 8), ...opts });
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [child, input], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("close", (code, signal) => {
      const line = out.trim().split("\n").pop() ?? "";
      try {
        resolve(JSON.parse(line) as LlamaCppResult);
      } catch {
        resolve({ ok: false, reason: `llama.cpp child exited with ${signal ?? code}: ${err.trim().slice(-500)}`, loadMs: 0, promptMs: 0, tokenMs: [], tokens: [], maxRssBytes: 0, threads: opts.threads });
      }
    });
  });
}
