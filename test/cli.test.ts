// The flashllm CLI as a user runs it (the built bundle): run with a budget, convert, inspect.
import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, STORIES_BIN, STORIES_REF, STORIES_TOK, readJson } from "./helpers.js";

const CLI = join(ROOT, "packages/node-io/dist/cli.js");
const cache = mkdtempSync(join(tmpdir(), "flashllm-cli-"));
const env = { ...process.env, FLASHLLM_CACHE: cache };
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { env, encoding: "utf8" });

describe("flashllm CLI", () => {
  it("run: the shipped model at half its file size, greedy, prints run.c's text and the stats line", () => {
    const ref = readJson(`${STORIES_REF}/greedy.json`).cases[1]; // "Once upon a time"
    const r = run(["run", "--shipped", "stories260K", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "60", "--memory-budget", "50%"]);
    expect(r.status, r.stderr).toBe(0);
    // run.c prints the same text; our 60 new tokens are a prefix of its 252.
    expect(ref.stdout.startsWith(r.stdout.trimEnd())).toBe(true);
    expect(r.stdout.length).toBeGreaterThan(100);
    expect(r.stderr).toMatch(/converting .* \(first use\)/);
    expect(r.stderr).toMatch(/\[stats\] every neuron from flash: 60 tokens, [\d.]+ tok\/s, read [\d.]+ \w+\/token \([\d.]+% of the FFN\) in [\d.]+ reads .*cache hit [\d.]+%.*peak RSS .*WASM memory/);
    // Second run uses the kept .flm.
    const again = run(["run", "--shipped", "stories260K", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "60", "--memory-budget", "50%"]);
    expect(again.stdout).toBe(r.stdout);
    expect(again.stderr).not.toMatch(/converting/);
  });

  it("run --workers 2: every run.c greedy reference through two shard workers, with per-shard memory and stats", () => {
    for (const c of readJson(`${STORIES_REF}/greedy.json`).cases) {
      const r = run(["run", "--shipped", "stories260K", "--prompt", c.prompt, "--temperature", "0", "--max-tokens", String(c.steps + 1 - c.prompt_tokens.length), "--workers", "2", "--context", "256"]);
      expect(r.status, r.stderr).toBe(0);
      // run.c prints the text after BOS; run prints the prompt, then the continuation.
      expect(r.stdout, JSON.stringify(c.prompt)).toBe(c.stdout);
      expect(r.stderr).toMatch(/shard 0: heads 0–3, neurons 0–85, vocabulary 0–255; budget [^:]+: resident .*WASM memory/);
      expect(r.stderr).toMatch(/shard 1: heads 4–7, neurons 86–171, vocabulary 256–511;/);
      expect(r.stderr).toMatch(/\[stats\] every neuron from flash: \d+ tokens, .*shard 0 per token: I\/O .*shard 1 per token: .*WASM memory .* \+ .* \+ /);
    }
  });

  it("run without --model (npm start): the ReLU model with its predictors reads a fraction of the FFN and hits the cache", () => {
    const r = run(["run", "--prompt", "Once upon a time", "--max-tokens", "60", "--memory-budget", "80%", "--seed", "7"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/training sparsity predictors for stories260K-relu .*\(first use/);
    expect(r.stderr).toMatch(/relu FFN; budget .*selector predictor/);
    const stats = /\[stats\] sparse: predicted neurons from flash: 60 tokens, .*read [\d.]+ KiB\/token \(([\d.]+)% of the FFN\).*neurons used ([\d.]+)%, cache hit ([\d.]+)%/.exec(r.stderr);
    expect(stats, r.stderr).not.toBe(null);
    const [readShare, used, hits] = stats!.slice(1).map(Number);
    expect(readShare).toBeLessThan(60); // the SwiGLU model at this budget reads ~70%, with naive reads 100%
    expect(used).toBeLessThan(50);
    expect(hits).toBeGreaterThan(20);
    expect(r.stdout.startsWith("Once upon a time")).toBe(true);
    // The dense comparison is one flag away, and its stats line says so.
    const dense = run(["run", "--shipped", "stories260K", "--prompt", "Once upon a time", "--max-tokens", "20", "--memory-budget", "80%"]);
    expect(dense.status, dense.stderr).toBe(0);
    expect(dense.stderr).toMatch(/\[stats\] every neuron from flash: 20 tokens, .*\(100\.0% of the FFN\)|\[stats\] every neuron from flash: 20 tokens, .*neurons used 100\.0%/);
  }, 300_000); // first use trains predictors: ~11 s of CPU, minutes on a machine shared with other jobs

  it("run --prefetch and --reader thread: the same greedy text as without them; the lookahead's prefetched neurons turn into cache hits", () => {
    const args = ["run", "--prompt", "Once upon a time", "--max-tokens", "40", "--memory-budget", "80%", "--temperature", "0"];
    const plain = run(args);
    expect(plain.status, plain.stderr).toBe(0);
    const hits = (stderr: string) => Number(/cache hit ([\d.]+)%/.exec(stderr)?.[1]);
    for (const extra of [["--prefetch"], ["--reader", "thread"], ["--prefetch", "--reader", "thread"]]) {
      const r = run([...args, ...extra]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout, extra.join(" ")).toBe(plain.stdout);
      if (extra.includes("--prefetch")) expect(hits(r.stderr)).toBeGreaterThan(hits(plain.stderr));
    }
    const bad = run([...args, "--reader", "threads"]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--reader.*thread/);
    const both = run([...args, "--reader", "thread", "--workers", "2"]);
    expect(both.status).toBe(1);
    expect(both.stderr).toMatch(/--reader thread runs one instance .* with --workers 2 each shard reads on its own thread already/);
    const noThreads = run([...args, "--workers", "2", "--shard-threads", "0"]);
    expect(noThreads.status).not.toBe(0);
    expect(noThreads.stderr).toMatch(/--shard-threads must be an integer ≥ 1/);
  }, 300_000);

  it("run: a budget too small is a clear error with the numbers, exit code 1", () => {
    const r = run(["run", "--shipped", "stories260K", "--memory-budget", "100KiB", "--max-tokens", "5"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/BudgetError \[BUDGET_TOO_SMALL\]: memory budget of 102400 bytes is too small/);
  });

  it("convert --dtype q8 then inspect: sizes, manifest and verified checksums; a flipped byte is reported", () => {
    const out = join(cache, "s.flm");
    execFileSync(process.execPath, [CLI, "convert", STORIES_BIN, out, "-z", STORIES_TOK, "--dtype", "q8"], { env, stdio: "pipe" });
    const r = run(["inspect", out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/architecture llama: dim 64, FFN 172 neurons × 5 layers/);
    expect(r.stdout).toMatch(/dtype: resident q8, FFN q8/);
    expect(r.stdout).toMatch(/flash part \(FFN bundles, read on demand\)/);
    expect(r.stdout).toMatch(/checksums: all \d+ sections and 860 bundles verified/);
    expect(r.stdout).toMatch(/flashllm container v2,/);
    expect(r.stdout).toMatch(/output projection \(wo\): head-major, blocks of 8 columns/);
    const old = run(["inspect", `${ROOT}test/data/stories260K-q8-v1.flm`, "--no-verify"]);
    expect(old.stdout).toMatch(/flashllm container v1,/);
    expect(old.stdout).toMatch(/output projection \(wo\): row-major/);
    const bytes = readFileSync(out);
    const m = JSON.parse(run(["inspect", out, "--json", "--no-verify"]).stdout);
    const ffn2 = m.sections.find((s: { name: string }) => s.name === "ffn.2");
    bytes[ffn2.offset + 10] ^= 1;
    writeFileSync(out, bytes);
    const bad = run(["inspect", out]);
    expect(bad.status).toBe(2);
    expect(bad.stdout).toMatch(/checksum MISMATCH in section ffn\.2/);
  });
});
