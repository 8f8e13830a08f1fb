// `flashllm run --dtype` on a llama2.c checkpoint (the shipped stories260K): every container type
// `convert` writes, each converted once and kept in the cache under its own name; f16 against run.c's
// greedy references (run.c computes in f32: f16 weights may only part from it at near-ties, and on
// this model they do not). Bad values are refused with a typed error naming the allowed ones.
import { afterAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFlm } from "@flashllm/sdk/internal";
import { NodeFileSource } from "@flashllm/node-io";
import { ROOT, STORIES_BIN, STORIES_REF, STORIES_TOK, readJson } from "./helpers.js";

interface RefCase { prompt: string; prompt_tokens: number[]; steps: number; stdout: string }

const CLI = join(ROOT, "packages/node-io/dist/cli.js");
const cache = mkdtempSync(join(tmpdir(), "flashllm-run-dtype-"));
afterAll(() => rmSync(cache, { recursive: true, force: true }));
const env = { ...process.env, FLASHLLM_CACHE: cache };
const cases = readJson(`${STORIES_REF}/greedy.json`).cases as RefCase[];

/** `flashllm run` on the checkpoint, greedy, as many new tokens as run.c's `-n steps` leaves after the prompt. */
const run = (dtype: string | undefined, c: RefCase, model = STORIES_BIN) =>
  spawnSync(process.execPath, [
    CLI, "run", "--model", model, "-z", STORIES_TOK, ...(dtype ? ["--dtype", dtype] : []),
    "--prompt", c.prompt, "--temperature", "0", "--max-tokens", String(c.steps + 1 - c.prompt_tokens.length),
  ], { env, encoding: "utf8" });

/** The cached `.flm` files of the checkpoint whose name ends with `-<dtype>-silu.flm`. */
const cached = (dtype: string) => readdirSync(cache).filter((f) => f.endsWith(`-${dtype}-silu.flm`));

async function storedTypes(file: string): Promise<{ resident: string; ffn: string }> {
  const source = await NodeFileSource.open(join(cache, file));
  try {
    return (await openFlm(source)).manifest.dtype;
  } finally {
    await source.close();
  }
}

describe("flashllm run --dtype (llama2.c checkpoint)", () => {
  it("f16: run.c's greedy text for every reference prompt; converted once, kept as its own file", async () => {
    for (const [i, c] of cases.entries()) {
      const r = run("f16", c);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout, JSON.stringify(c.prompt)).toBe(c.stdout);
      // the first run converts, the others use the kept file
      if (i === 0) expect(r.stderr).toMatch(/converting .*stories260K\.bin to .*-f16-silu\.flm \(first use\)/);
      else expect(r.stderr).not.toMatch(/converting/);
    }
    expect(cached("f16")).toHaveLength(1);
    expect(await storedTypes(cached("f16")[0])).toEqual({ resident: "f16", ffn: "f16" });
  });

  it("q8, q8_0 and q4 each convert to their own stored type and run; agreement with run.c is printed", async () => {
    const c = cases[1]; // "Once upon a time"
    for (const [dtype, stored] of [["q8", "q8"], ["q8_0", "q8_0"], ["q4", "q4_0"]] as const) {
      const r = run(dtype, c);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`converting .* to .*-${stored}-silu\\.flm \\(first use\\)`));
      expect(r.stdout.startsWith(c.prompt)).toBe(true);
      expect(r.stdout.length).toBeGreaterThan(c.prompt.length + 100);
      expect(cached(stored), dtype).toHaveLength(1);
      expect(await storedTypes(cached(stored)[0])).toEqual({ resident: stored, ffn: stored });
      let same = 0;
      while (same < c.stdout.length && r.stdout[same] === c.stdout[same]) same++;
      console.log(`run --dtype ${dtype}: the first ${same} of run.c's ${c.stdout.length} characters`);
    }
    // the default is f32, in a file of its own
    const r = run(undefined, c);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe(c.stdout);
    expect(cached("f32")).toHaveLength(1);
  });

  it("a type convert does not write, or --dtype with a .flm, is refused with a typed error", () => {
    const bad = run("q5_k", cases[1]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('flashllm: FlashError [BAD_ARGUMENT]: --dtype must be one of f32, q8, q8_0, q4, f16, got "q5_k"');
    if (cached("f16").length === 0) run("f16", cases[1]); // a .flm to run (kept by the first test)
    const flm = join(cache, cached("f16")[0]);
    const withFlm = run("q8", cases[1], flm);
    expect(withFlm.status).toBe(1);
    expect(withFlm.stderr).toMatch(/FlashError \[BAD_ARGUMENT\]: --dtype applies when converting a llama2\.c checkpoint; .* is a \.flm/);
  });
});
