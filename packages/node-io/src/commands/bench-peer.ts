import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { synthShape, synthesizeGguf } from "@flashllm/sdk/internal";
import { NodeFileSink } from "../file-sink.js";
import { formatBytes } from "../format-stats.js";
import { measureLlamaCpp, type LlamaCppResult } from "../peer/llama-cpp.js";
import { memAvailable, startSqueeze } from "../peer/squeeze.js";
import { parseBudget } from "../budget.js";
import { synthFile } from "./synth.js";

/** Options of `flashllm bench --peer llama.cpp`. */
export interface PeerBenchOptions {
  shape: string;
  model?: string;
  gguf?: string;
  outDir: string;
  memoryBudget: string;
  tokens: number;
  peerTokens: number;
  workers?: number;
  variants: string;
  conditions: string;
  threads?: number;
  seed: number;
  /**
   * Which engines run: both by default. One side alone lets a machine whose disk cannot hold both
   * files at once (the 30B shape: ~33 GB each) run them in two passes; the ratio is then taken by hand.
   */
  sides: string;
  /** Arguments passed through to the flashllm side (`flashllm bench`). */
  benchArgs: string[];
}

interface FlashSide {
  name: string;
  label: string;
  skipped?: string;
  msPerToken: number;
  ioMs?: number;
  memoryMs?: number;
  computeMs: number;
  bytesPerToken: number;
  peakRssBytes: number;
}

interface ConditionResult {
  condition: "cached" | "squeezed";
  note: string;
  availableBytes: number;
  peer?: LlamaCppResult & { msPerToken: number };
  flash: FlashSide[];
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function sh(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout ?? ""}${r.stderr ?? ""}` };
}

/** Drops a file from the page cache (vmtouch -e, else dd iflag=nocache). */
function evict(path: string): void {
  if (sh("vmtouch", ["-q", "-e", path]).ok) return;
  sh("dd", [`if=${path}`, "iflag=nocache", "count=0", "status=none"]);
}

/** Reads a file into the page cache (the condition llama.cpp is fastest in). */
function warm(path: string): void {
  if (sh("vmtouch", ["-q", "-t", path]).ok) return;
  sh("cat", [path, "-o", "/dev/null"]);
}

/**
 * `flashllm bench --peer llama.cpp`: the same synthetic shape as a `.flm` (flashllm) and as a GGUF
 * Q8_0 file (llama.cpp through node-llama-cpp 3.21.1: CPU, mmap, dense, threads = cores), in one run,
 * under two conditions: (a) `cached`: the GGUF in the page cache, all the RAM llama.cpp wants;
 * (b) `squeezed`: both files evicted and a helper process holding anonymous memory so that
 * MemAvailable ≈ flashllm's budget + 1 GiB (less than the GGUF). flashllm runs through `flashllm bench`
 * (the same engine builder and defaults as `run`), cold (O_DIRECT / evicted) in both conditions.
 */
export async function peerBenchCommand(o: PeerBenchOptions): Promise<void> {
  const say = (m: string) => process.stderr.write(`[peer] ${m}\n`);
  const shape = synthShape(o.shape);
  await mkdir(o.outDir, { recursive: true });
  const flm = resolve(o.model ?? join(o.outDir, `${o.shape}.flm`));
  const gguf = resolve(o.gguf ?? join(o.outDir, `${o.shape}-q8_0.gguf`));
  const sides = new Set(o.sides.split(",").map((s) => s.trim()));
  for (const s of sides) if (s !== "flashllm" && s !== "llama.cpp") throw new Error(`unknown side "${s}" (flashllm, llama.cpp)`);
  const withFlash = sides.has("flashllm");
  const withPeer = sides.has("llama.cpp");
  if (withFlash && !existsSync(flm)) await synthFile(shape, flm, { seed: o.seed, bundleAlign: 4096 });
  if (withPeer && !existsSync(gguf)) {
    say(`writing ${gguf} (random Q8_0 weights, shape ${shape.name})`);
    const sink = await NodeFileSink.create(gguf);
    const t0 = performance.now();
    try {
      await synthesizeGguf(sink, shape, { seed: o.seed });
      await sink.commit();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    say(`wrote ${formatBytes((await stat(gguf)).size)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const flmBytes = withFlash ? (await stat(flm)).size : 0;
  const ggufBytes = withPeer ? (await stat(gguf)).size : 0;
  const threads = o.threads ?? availableParallelism();
  // The launcher, not dist/cli.js: it sizes libuv's pool and turns on io_uring before libuv starts.
  const cli = join(fileURLToPath(new URL(".", import.meta.url)), "..", "bin", "flashllm.cjs");
  if (!withFlash && /%\s*$/.test(o.memoryBudget)) throw new Error("--sides llama.cpp: give --memory-budget in bytes (the squeeze leaves budget + 1 GiB free), e.g. the figure the flashllm pass printed");
  const budgetBytes = parseBudget(o.memoryBudget, flmBytes);

  const runFlash = async (): Promise<FlashSide[]> => {
    if (!withFlash) return [];
    const dir = await mkdtemp(join(o.outDir, "peer-flash-"));
    try {
      const args = [cli, "bench", "--model", flm, "--memory-budget", o.memoryBudget, "--tokens", String(o.tokens), "--variants", o.variants, "--no-fio", "--out-dir", dir, ...o.benchArgs];
      if (o.workers !== undefined) args.push("--workers", String(o.workers));
      const r = spawnSync(process.execPath, ["--expose-gc", ...args], { stdio: ["ignore", "inherit", "inherit"], env: process.env });
      if (r.status !== 0) throw new Error(`flashllm bench exited with ${r.status ?? r.signal}`);
      const json = (await readdir(dir)).find((f) => f.endsWith(".json"));
      if (!json) throw new Error("flashllm bench wrote no results");
      const data = JSON.parse(await readFile(join(dir, json), "utf8")) as { results: FlashSide[] };
      return data.results;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  const runPeer = async (): Promise<ConditionResult["peer"] | undefined> => {
    if (!withPeer) return undefined;
    const r = await measureLlamaCpp({ gguf, threads, promptTokens: [1, 400, 500, 600], tokens: o.peerTokens });
    if (!r.ok) throw new Error(`llama.cpp could not run: ${r.reason}`);
    return { ...r, msPerToken: median(r.tokenMs) };
  };

  const results: ConditionResult[] = [];
  for (const condition of o.conditions.split(",").map((s) => s.trim()) as ConditionResult["condition"][]) {
    if (condition === "cached") {
      say(withPeer ? `(a) cached: ${gguf} read into the page cache; llama.cpp with ${threads} threads` : "(a) cached: flashllm alone, cold at its budget");
      if (withPeer) warm(gguf);
      const peer = await runPeer();
      if (withPeer) evict(gguf);
      const flash = await runFlash();
      results.push({ condition, note: "GGUF in the page cache; flashllm cold at its budget", availableBytes: memAvailable(), peer, flash });
    } else if (condition === "squeezed") {
      if (withPeer) evict(gguf);
      if (withFlash) evict(flm);
      const target = budgetBytes + 2 ** 30;
      const squeeze = await startSqueeze(target);
      say(`(b) squeezed: holding ${formatBytes(squeeze.heldBytes)}; MemAvailable ${formatBytes(squeeze.availableBytes)} (target ${formatBytes(target)})${withPeer ? `; GGUF ${formatBytes(ggufBytes)}` : ""}`);
      try {
        const peer = await runPeer();
        if (withPeer) evict(gguf);
        const flash = await runFlash();
        results.push({ condition, note: `MemAvailable ${formatBytes(squeeze.availableBytes)}${withPeer ? ` < GGUF ${formatBytes(ggufBytes)}` : ""}`, availableBytes: squeeze.availableBytes, peer, flash });
      } finally {
        await squeeze.stop();
      }
    } else throw new Error(`unknown condition "${condition}" (cached, squeezed)`);
  }

  const la = loadavg().map((x) => x.toFixed(2)).join(" ");
  const lines: string[] = [];
  lines.push(`# flashllm vs llama.cpp (node-llama-cpp 3.21.1), shape ${shape.name}`);
  lines.push(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${formatBytes(totalmem())} RAM; load average at the end ${la}`);
  const flashFile = withFlash ? `.flm ${formatBytes(flmBytes)} (flashllm budget ${o.memoryBudget} = ${formatBytes(budgetBytes)}${o.workers ? `, ${o.workers} workers` : ""})` : "flashllm not run (--sides)";
  const peerFile = withPeer ? `GGUF Q8_0 ${formatBytes(ggufBytes)} (llama.cpp: mmap, dense, ${threads} threads)` : "llama.cpp not run (--sides)";
  lines.push(`files: ${flashFile}, ${peerFile}`);
  lines.push("");
  lines.push("| condition | engine | ms/token | I/O | memory | compute | read/token | peak RSS | llama.cpp ÷ flashllm |");
  lines.push("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of results) {
    if (r.peer) lines.push(`| ${r.condition} | llama.cpp (${r.peer.tokenMs.length} tokens, median) | ${r.peer.msPerToken.toFixed(1)} | | | | mmap | ${formatBytes(r.peer.maxRssBytes)} | 1.00 |`);
    for (const f of r.flash) {
      if (f.skipped) {
        lines.push(`| ${r.condition} | flashllm ${f.label} | skipped: ${f.skipped} | | | | | | |`);
        continue;
      }
      const ms = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? "" : v.toFixed(1));
      lines.push(`| ${r.condition} | flashllm ${f.label}${o.workers && o.workers > 1 ? ` (${o.workers} workers)` : ""} | ${ms(f.msPerToken)} | ${ms(f.ioMs)} | ${ms(f.memoryMs)} | ${ms(f.computeMs)} | ${formatBytes(f.bytesPerToken)} | ${formatBytes(f.peakRssBytes)} | ${r.peer ? `${(r.peer.msPerToken / f.msPerToken).toFixed(2)}x` : ""} |`);
    }
  }
  const text = lines.join("\n");
  process.stdout.write(text + "\n");
  const { writeFile } = await import("node:fs/promises");
  const base = join(o.outDir, `peer-${o.shape}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  await writeFile(`${base}.json`, JSON.stringify({ shape: shape.name, flm, gguf, flmBytes, ggufBytes, threads, loadavg: loadavg(), options: o, results }, null, 2));
  await writeFile(`${base}.md`, text + "\n");
  say(`wrote ${base}.json and ${base}.md`);
}
