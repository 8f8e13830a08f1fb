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
    const r = run(["run", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "60", "--memory-budget", "50%"]);
    expect(r.status, r.stderr).toBe(0);
    // run.c prints the same text; our 60 new tokens are a prefix of its 252.
    expect(ref.stdout.startsWith(r.stdout.trimEnd())).toBe(true);
    expect(r.stdout.length).toBeGreaterThan(100);
    expect(r.stderr).toMatch(/converting .* \(first use\)/);
    expect(r.stderr).toMatch(/\[stats\] 60 tokens, [\d.]+ tok\/s, read [\d.]+ \w+\/token in [\d.]+ reads .*cache hit [\d.]+%.*peak RSS .*WASM memory/);
    // Second run uses the kept .flm.
    const again = run(["run", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "60", "--memory-budget", "50%"]);
    expect(again.stdout).toBe(r.stdout);
    expect(again.stderr).not.toMatch(/converting/);
  });

  it("run --workers 2: every run.c greedy reference through two shard workers, with per-shard memory and stats", () => {
    for (const c of readJson(`${STORIES_REF}/greedy.json`).cases) {
      const r = run(["run", "--prompt", c.prompt, "--temperature", "0", "--max-tokens", String(c.steps + 1 - c.prompt_tokens.length), "--workers", "2", "--context", "256"]);
      expect(r.status, r.stderr).toBe(0);
      // run.c prints the text after BOS; run prints the prompt, then the continuation.
      expect(r.stdout, JSON.stringify(c.prompt)).toBe(c.stdout);
      expect(r.stderr).toMatch(/shard 0: heads 0–3, neurons 0–85, vocabulary 0–255; budget [^:]+: resident .*WASM memory/);
      expect(r.stderr).toMatch(/shard 1: heads 4–7, neurons 86–171, vocabulary 256–511;/);
      expect(r.stderr).toMatch(/\[stats\] \d+ tokens, .*shard 0 per token: I\/O .*shard 1 per token: .*WASM memory .* \+ .* \+ /);
    }
  });

  it("run: a budget too small is a clear error with the numbers, exit code 1", () => {
    const r = run(["run", "--memory-budget", "100KiB", "--max-tokens", "5"]);
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
