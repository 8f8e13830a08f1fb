// The CLI as a new and as a hostile user drives it (issue 13): pipes that close, full disks, corrupted
// files, concurrent first runs, odd paths and flags. Each case drives the built CLI in a child process.
import { describe, expect, it } from "vitest";
import { execFileSync, spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, STORIES_BIN, STORIES_REF, STORIES_TOK, readJson } from "./helpers.js";

const CLI = join(ROOT, "packages/node-io/dist/cli.js");
const fresh = () => mkdtempSync(join(tmpdir(), "flashllm-hard-"));
const shared = fresh();
const envFor = (cache: string, extra: Record<string, string | undefined> = {}) => ({ ...process.env, FLASHLLM_CACHE: cache, ...extra });
const cli = (args: string[], opts: { cache?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, [CLI, ...args], { env: opts.env ?? envFor(opts.cache ?? shared), encoding: "utf8", timeout: opts.timeout ?? 60_000 });
/** Runs a shell pipeline; `$CLI` is the CLI command. */
const sh = (script: string, cache = shared) =>
  spawnSync("bash", ["-c", script], { env: { ...envFor(cache), CLI: `${process.execPath} ${CLI}` }, encoding: "utf8", timeout: 60_000 });
const greedyRef = () => readJson(`${STORIES_REF}/greedy.json`).cases[1]; // run.c, "Once upon a time"
const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at .*\(|node:internal|Unhandled/);

/** Converts the shipped model once into `dir`, for tests that need a .flm to damage. */
function convertedFlm(dir: string, name = "s.flm"): string {
  const out = join(dir, name);
  execFileSync(process.execPath, [CLI, "convert", STORIES_BIN, out, "-z", STORIES_TOK], { env: envFor(dir), stdio: "pipe" });
  return out;
}

/** Flips one bit in the middle of FFN section `ffn.<layer>` (inside a bundle's weights). */
function flipFfnBit(path: string, layer: number): void {
  const m = JSON.parse(cli(["inspect", path, "--json", "--no-verify"]).stdout);
  const s = m.sections.find((x: { name: string }) => x.name === `ffn.${layer}`);
  const bytes = readFileSync(path);
  bytes[s.offset + Math.floor(s.length / 2) + 3] ^= 0x10;
  writeFileSync(path, bytes);
}

describe("defect 1: a corrupted model is an error, not mangled text", () => {
  it("run verifies reads by default: a flipped bit in FFN data exits 1 naming the layer; --no-verify is the explicit opt-out", () => {
    const dir = fresh();
    const flm = convertedFlm(dir);
    flipFfnBit(flm, 3);
    const r = cli(["run", "--model", flm, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20"], { cache: dir });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/\[CHECKSUM_MISMATCH\].*layer 3/);
    const unverified = cli(["run", "--model", flm, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20", "--no-verify"], { cache: dir });
    expect(unverified.status).toBe(0);
    expect(unverified.stderr).toMatch(/reads not verified \(--no-verify\)/);
  });
});

describe("defect 2: stdout that closes or fills up", () => {
  it("run | head -c 100: stops quietly with exit 0, without generating on", () => {
    const r = sh(`( $CLI run --shipped stories260K --prompt "Once upon a time" --temperature 0 --max-tokens 400 -b 150% 2>"$FLASHLLM_CACHE/err"; echo $? >"$FLASHLLM_CACHE/rc" ) | head -c 100 >/dev/null; cat "$FLASHLLM_CACHE/rc"; cat "$FLASHLLM_CACHE/err"`);
    const [rc, ...err] = r.stdout.split("\n");
    expect(rc).toBe("0");
    noStack(err.join("\n"));
    expect(err.join("\n")).not.toMatch(/EPIPE|\[stats\]/); // the stats line would mean it generated all 400 tokens
  });

  it("inspect | head -n 2: exit 0, no stack trace", () => {
    const dir = fresh();
    const flm = convertedFlm(dir);
    const r = sh(`( $CLI inspect ${JSON.stringify(flm)} 2>"$FLASHLLM_CACHE/err"; echo $? >"$FLASHLLM_CACHE/rc" ) | head -n 1 >/dev/null; cat "$FLASHLLM_CACHE/rc"; cat "$FLASHLLM_CACHE/err"`, dir);
    const [rc, ...err] = r.stdout.split("\n");
    expect(rc).toBe("0");
    expect(err.join("\n").trim()).toBe("");
  });

  it("run > /dev/full: a clear ENOSPC error, exit 1", () => {
    const r = sh(`$CLI run --shipped stories260K --prompt "Once" --temperature 0 --max-tokens 30 -b 50% >/dev/full`);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/flashllm: cannot write the output: ENOSPC/);
    noStack(r.stderr);
  });
});

describe("defect 3: the conversion cache keys on the tokenizer too", () => {
  it("a first conversion with a wrong tokenizer is not reused for the right one", () => {
    const dir = fresh();
    // A tokenizer of the same vocabulary size whose pieces are upper-cased: it parses, but it is not
    // this model's, and the text comes out different.
    const wrong = readFileSync(STORIES_TOK);
    for (let p = 4, id = 0; id < 512; id++) {
      const len = wrong.readInt32LE(p + 4);
      for (let b = p + 8; b < p + 8 + len; b++) if (wrong[b] >= 0x61 && wrong[b] <= 0x7a) wrong[b] -= 0x20;
      p += 8 + len;
    }
    const wrongTok = join(dir, "wrong.bin");
    writeFileSync(wrongTok, wrong);
    const args = ["run", "--model", STORIES_BIN, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "30"];
    const first = cli([...args, "-z", wrongTok], { cache: dir });
    expect(first.status, first.stderr).toBe(0);
    const right = cli([...args, "-z", STORIES_TOK], { cache: dir });
    expect(right.status, right.stderr).toBe(0);
    expect(right.stderr).toMatch(/converting .* \(first use\)/);
    expect(greedyRef().stdout.startsWith(right.stdout.trimEnd())).toBe(true);
    expect(right.stdout).not.toBe(first.stdout);
  });
});

describe("defect 4: long prompts", () => {
  it("a 100 KB prompt is refused promptly with CONTEXT_OVERFLOW and the token count", () => {
    const prompt = readFileSync(join(ROOT, "test/data/tinystories_400k.txt"), "utf8").slice(0, 100_000);
    const r = cli(["run", "--shipped", "stories260K", "--prompt", prompt, "--max-tokens", "5"], { timeout: 30_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/\[CONTEXT_OVERFLOW\]: the prompt is \d{5} tokens but the context holds 512/);
    expect(r.stdout).toBe("");
  });
});

describe("defect 5: first use from several processes at once", () => {
  it("three runs on an empty cache all succeed with the same text and leave no temp files", async () => {
    const dir = fresh();
    const one = () =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const p = spawn(process.execPath, [CLI, "run", "--shipped", "stories260K", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20"], { env: envFor(dir) });
        let out = "";
        let err = "";
        p.stdout.on("data", (d) => (out += d));
        p.stderr.on("data", (d) => (err += d));
        p.on("close", (code) => resolve({ code, out, err }));
      });
    const runs = await Promise.all([one(), one(), one()]);
    for (const r of runs) expect(r.code, r.err).toBe(0);
    expect(new Set(runs.map((r) => r.out)).size).toBe(1);
    expect(greedyRef().stdout.startsWith(runs[0].out.trimEnd())).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith(".partial"))).toEqual([]);
  });
});

describe("defect 6: inspect --json", () => {
  it("stdout is one JSON document with the checksum report; a bad bundle gives ok false and exit 2", () => {
    const dir = fresh();
    const flm = convertedFlm(dir);
    const good = cli(["inspect", flm, "--json"]);
    expect(good.status).toBe(0);
    const doc = JSON.parse(good.stdout);
    expect(doc.magic ?? doc.version).toBeDefined();
    expect(doc.verification).toMatchObject({ ok: true, bundlesChecked: 860 });
    flipFfnBit(flm, 1);
    const bad = cli(["inspect", flm, "--json"]);
    expect(bad.status).toBe(2);
    expect(JSON.parse(bad.stdout).verification.ok).toBe(false);
  });
});

describe("defect 7: the README's npx command", () => {
  it("npx flashllm resolves to this repository's CLI (its bin is linked by npm ci, before dist/ exists)", () => {
    const pkg = readJson(join(ROOT, "packages/node-io/package.json"));
    expect(existsSync(join(ROOT, "packages/node-io", pkg.bin.flashllm))).toBe(true);
    expect(pkg.bin.flashllm.includes("dist/")).toBe(false);
    const r = spawnSync("npx", ["--no-install", "flashllm", "--version"], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });
});

describe("defect 8: an unusable cache folder", () => {
  it("a HOME where nothing can be created: a clear error naming the folder and FLASHLLM_CACHE", () => {
    const r = cli(["run", "--shipped", "stories260K", "--max-tokens", "3"], { env: { ...process.env, FLASHLLM_CACHE: undefined, HOME: "/proc" } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/\[CACHE_UNUSABLE\]: cannot use \/proc\/\.cache\/flashllm \(the default cache folder\).*Set FLASHLLM_CACHE/);
  });
  it("FLASHLLM_CACHE under a file: the error says it came from FLASHLLM_CACHE; --help documents the variable", () => {
    const r = cli(["run", "--shipped", "stories260K", "--max-tokens", "3"], { env: envFor("/dev/null/flashllm") });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/cannot use \/dev\/null\/flashllm \(from FLASHLLM_CACHE\).*ENOTDIR/);
    expect(cli(["--help"]).stdout).toMatch(/FLASHLLM_CACHE/);
    expect(cli(["run", "--shipped", "stories260K", "--help"]).stdout).toMatch(/FLASHLLM_CACHE/);
  });
});

describe("defect 9: budget flags and what the banner reports", () => {
  it("--dense refuses --memory-budget; an empty or unreadable budget is an error, not unlimited", () => {
    const dense = cli(["run", "--shipped", "stories260K", "--dense", "--memory-budget", "abc", "--max-tokens", "3"]);
    expect(dense.status).toBe(1);
    expect(dense.stderr).toMatch(/--dense loads the whole model into memory, so --memory-budget cannot apply/);
    const empty = cli(["run", "--shipped", "stories260K", "--memory-budget", "", "--max-tokens", "3"]);
    expect(empty.status).toBe(1);
    expect(empty.stderr).toMatch(/cannot read memory budget ""/);
  });
  it("the banner gives the positions allocated and the runtime overhead; WASM memory stays within budget + overhead", () => {
    const r = cli(["run", "--shipped", "stories260K", "--prompt", "Once", "--temperature", "0", "--max-tokens", "1000000000", "-b", "2MiB"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/KV\+activations [\d.]+ KiB \(512 positions\)/);
    const kib = (re: RegExp) => Number(re.exec(r.stderr)![1]) * (re.exec(r.stderr)![2] === "MiB" ? 1024 : 1);
    const budget = kib(/budget ([\d.]+) (KiB|MiB)/);
    const overhead = kib(/runtime overhead ([\d.]+) (KiB|MiB) outside the budget/);
    const wasm = kib(/WASM memory ([\d.]+) (KiB|MiB)/);
    expect(wasm).toBeLessThanOrEqual(budget + overhead);
  });
});

describe("defect 10: the smaller ones", () => {
  it("eval on an empty text is an error, not NaN and 100%", () => {
    const dir = fresh();
    const flm = convertedFlm(dir);
    const empty = join(dir, "empty.txt");
    writeFileSync(empty, "\n\n");
    const r = cli(["eval", flm, "--text", empty, "--selector", "exact"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/has no text to score/);
    expect(r.stdout).not.toMatch(/NaN/);
  });

  it("convert refuses to overwrite its input; --bundle-align 2^30 is refused before writing", () => {
    const dir = fresh();
    const input = join(dir, "m.bin");
    copyFileSync(STORIES_BIN, input);
    const r = cli(["convert", input, input, "-z", STORIES_TOK]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/is the input .*would overwrite it/);
    expect(readFileSync(input).equals(readFileSync(STORIES_BIN))).toBe(true);
    const huge = cli(["convert", input, join(dir, "huge.flm"), "-z", STORIES_TOK, "--bundle-align", String(2 ** 30)]);
    expect(huge.status).toBe(1);
    expect(huge.stderr).toMatch(/--bundle-align must be a power of two from 16 to 65536/);
    expect(readdirSync(dir)).toEqual(["m.bin"]);
  });

  it("a FIFO as the model is refused, not waited on", () => {
    const dir = fresh();
    const fifo = join(dir, "model.flm");
    execFileSync("mkfifo", [fifo]);
    for (const args of [["run", "--model", fifo], ["inspect", fifo]]) {
      const r = cli(args, { timeout: 20_000 });
      expect(r.signal, "hung").toBe(null);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/is a FIFO \(pipe\): give a regular file/);
    }
  });

  it("the format is read from the file's magic, not its name", () => {
    const dir = fresh();
    const flm = convertedFlm(dir);
    const named = join(dir, "looks-like-llama2c.bin");
    copyFileSync(flm, named);
    const r = cli(["run", "--model", named, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20"]);
    expect(r.status, r.stderr).toBe(0);
    expect(greedyRef().stdout.startsWith(r.stdout.trimEnd())).toBe(true);
  });

  it("--seed 0 is a seed: accepted and reproducible; --version prints the version", () => {
    const a = cli(["run", "--shipped", "stories260K", "--prompt", "Once", "--seed", "0", "--max-tokens", "20"]);
    const b = cli(["run", "--shipped", "stories260K", "--prompt", "Once", "--seed", "0", "--max-tokens", "20"]);
    expect(a.status, a.stderr).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect(cli(["--version"]).stdout.trim()).toBe(readJson(join(ROOT, "packages/node-io/package.json")).version);
  });

  it("Ctrl-C stops a run with exit code 130 and the stats so far", async () => {
    const p = spawn(process.execPath, [CLI, "run", "--shipped", "stories260K", "--prompt", "Once", "--max-tokens", "500", "--strategy", "naive"], { env: envFor(shared) });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    p.stdout.once("data", () => p.kill("SIGINT"));
    const code = await new Promise<number | null>((resolve) => p.on("close", (c) => resolve(c)));
    expect(code, err).toBe(130);
    expect(err).toMatch(/interrupted\n\[stats\] every neuron from flash: \d+ tokens/);
  });

  it("messages name the flags a user typed, not SDK option names", () => {
    const r = cli(["run", "--shipped", "stories260K", "--memory-budget", "100KiB", "--max-tokens", "5"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/BUDGET_TOO_SMALL/);
    expect(r.stderr).toMatch(/--context/);
    expect(r.stderr).not.toMatch(/contextLength/);
  });
});
