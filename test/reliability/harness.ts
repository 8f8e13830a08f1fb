// Shared machinery of the reliability suite: seed models, an instrumented WASM heap (guard bytes after
// every block, double-free and leak detection, peak use against the budget), outcome classification,
// cache-consistency checks, and the knobs (env vars) that bound the suite's time.
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { convertFile } from "@flashllm/node-io";
import {
  FlashError, Kernels, MemorySink, type NeuronCache, convertLlama2c, openFlashModel, openFlm, readLlama2cCheckpoint, writeWithPredictor,
  type FlashModel, type OpenFlashOptions, type WasmBlock, MemorySource,
} from "@flashllm/sdk/internal";
import { ROOT, SHARED_MODELS, STORIES_BIN, STORIES_TOK, hasShared, readBytes } from "../helpers.js";
import { f32Bytes, writeSafetensors, type RawTensor } from "../../packages/sdk/test/hf/helpers.js";

// ---------------------------------------------------------------------------------------------------
// Knobs
// ---------------------------------------------------------------------------------------------------

/** A number from the environment, or `fallback`. */
export function envNumber(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`);
  return n;
}

/** Seed of the fuzzer (FLASHLLM_FUZZ_SEED, default 1: CI runs the same cases every time). */
export const FUZZ_SEED = envNumber("FLASHLLM_FUZZ_SEED", 1);
/** Total fuzzing time over all targets, seconds (FLASHLLM_FUZZ_SECONDS, default 24). */
export const FUZZ_SECONDS = envNumber("FLASHLLM_FUZZ_SECONDS", 24);
/** Multiplies every target's case cap (FLASHLLM_FUZZ_CASES_SCALE, default 1). */
export const FUZZ_CASES_SCALE = envNumber("FLASHLLM_FUZZ_CASES_SCALE", 1);
/** Soak duration, seconds (FLASHLLM_SOAK_SECONDS, default 14). */
export const SOAK_SECONDS = envNumber("FLASHLLM_SOAK_SECONDS", 14);
/** A case slower than this counts as a hang, ms. */
export const HANG_MS = envNumber("FLASHLLM_FUZZ_HANG_MS", 10_000);

// ---------------------------------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------------------------------

/** mulberry32 with helpers. */
export class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// ---------------------------------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------------------------------

/** A llama2.c checkpoint with its tokenizer. */
export interface Llama2cSeed {
  name: string;
  bin: Uint8Array;
  tok: Uint8Array;
  activation: "silu" | "relu";
}

/** The shipped model, then the real models of /work/shared/models when present. */
export function llama2cSeeds(): Llama2cSeed[] {
  const out: Llama2cSeed[] = [{ name: "stories260K", bin: readBytes(STORIES_BIN), tok: readBytes(STORIES_TOK), activation: "silu" }];
  if (!hasShared) return out;
  const add = (name: string, bin: string, tok: string, activation: "silu" | "relu") => {
    const b = `${SHARED_MODELS}/${bin}`;
    const t = `${SHARED_MODELS}/${tok}`;
    if (existsSync(b) && existsSync(t)) out.push({ name, bin: readBytes(b), tok: readBytes(t), activation });
  };
  add("aidreams260K", "aidreams260K/aidreams260K.bin", "aidreams260K/tok512.bin", "silu");
  add("babyllama-tok105", "babyllama-tok105/model5000.bin", "babyllama-tok105/tok105.bin", "silu");
  add("stories260K-relu", "stories260K-relu/stories260K_relu.bin", "stories260K-relu/tok512.bin", "relu");
  return out;
}

/**
 * The safetensors files of /work/shared/models, plus one written here from the shipped
 * stories260K-relu (HF tensor names; always available, so CI fuzzes the header reader too).
 */
export function safetensorsSeeds(): { name: string; bytes: Uint8Array }[] {
  const shared = !hasShared ? [] : ["stories260K-relu", "babyllama-tok105-relu", "shakespeare-relu-gpt"]
    .map((d) => ({ name: d, path: `${SHARED_MODELS}/${d}/model.safetensors` }))
    .filter((s) => existsSync(s.path))
    .map((s) => ({ name: s.name, bytes: readBytes(s.path) }));
  return [...shared, { name: "shipped-relu-hf", bytes: shippedReluSafetensors() }];
}

let shippedSt: Uint8Array | undefined;
function shippedReluSafetensors(): Uint8Array {
  if (shippedSt) return shippedSt;
  const { config: c, tensors } = readLlama2cCheckpoint(readBytes(`${ROOT}packages/node-io/models/stories260K-relu/stories260K_relu.bin`), { activation: "relu" });
  const kv = (c.dim * c.nKvHeads) / c.nHeads;
  const t = (name: string, key: string, shape: number[]): RawTensor => ({ name, dtype: "F32", shape, data: f32Bytes(tensors.get(key)!) });
  const list = [t("model.embed_tokens.weight", "tok_embeddings", [c.vocabSize, c.dim]), t("model.norm.weight", "norm", [c.dim])];
  for (let l = 0; l < c.nLayers; l++) {
    const L = `layers.${l}.`, H = `model.layers.${l}.`;
    list.push(
      t(H + "input_layernorm.weight", L + "attn_norm", [c.dim]), t(H + "self_attn.q_proj.weight", L + "wq", [c.dim, c.dim]),
      t(H + "self_attn.k_proj.weight", L + "wk", [kv, c.dim]), t(H + "self_attn.v_proj.weight", L + "wv", [kv, c.dim]),
      t(H + "self_attn.o_proj.weight", L + "wo", [c.dim, c.dim]), t(H + "post_attention_layernorm.weight", L + "ffn_norm", [c.dim]),
      t(H + "mlp.gate_proj.weight", L + "w1", [c.hiddenDim, c.dim]), t(H + "mlp.up_proj.weight", L + "w3", [c.hiddenDim, c.dim]),
      t(H + "mlp.down_proj.weight", L + "w2", [c.dim, c.hiddenDim]),
    );
  }
  return (shippedSt = writeSafetensors(list));
}

/** A converted `.flm` with the budget the fuzzer opens it with. */
export interface FlmSeed {
  name: string;
  bytes: Uint8Array;
  /** Fixed memory + 40% of the full neuron cache at the model's whole context: evictions happen. */
  budget: number;
}

const flmCache = new Map<string, Promise<FlmSeed>>();
/** The OPT-family seed (shared models only). */
export const OPT_SEED = "shakespeare-relu-gpt-f32";

/**
 * `.flm` seeds by name: `<model>-<dtype>[-a<alignment>]`, e.g. `stories260K-f32`, `stories260K-q8-a4096`,
 * `babyllama-tok105-f32` (shared models only when /work/shared is there).
 */
export function flmSeed(name: string): Promise<FlmSeed> {
  let p = flmCache.get(name);
  if (!p) {
    p = (async () => {
      if (name === OPT_SEED) {
        // The OPT family (LayerNorm, learned positions, biases, character tokenizer), from safetensors.
        const dir = `${SHARED_MODELS}/shakespeare-relu-gpt`;
        const out = join(mkdtempSync(join(tmpdir(), "flashllm-rel-")), "gpt.flm");
        await convertFile(dir, `${dir}/vocab.json`, out, { provenance: { convertedAt: "fixed" } });
        const bytes = readBytes(out);
        return { name, bytes, budget: await budgetFor(bytes, 0.4) };
      }
      const m = /^(.+)-(f32|q8)(?:-a(\d+))?(-pred)?$/.exec(name);
      if (!m) throw new Error(`bad seed name ${name}`);
      const src = llama2cSeeds().find((s) => s.name === m[1]);
      if (!src) throw new Error(`no model ${m[1]} (is /work/shared/models there?)`);
      const sink = new MemorySink();
      await convertLlama2c(src.bin, src.tok, sink, { dtype: m[2] as "f32" | "q8", bundleAlignment: m[3] ? Number(m[3]) : undefined, activation: src.activation });
      let bytes = sink.bytes();
      if (m[4]) {
        // Random low-rank predictors (the sparsity module's format): the manifest's predictor entry
        // and the predictor tensors are fuzzed too, and opening selects with them by default.
        const file = await openFlm(new MemorySource(bytes));
        const { dim, hiddenDim, nLayers } = file.manifest.config;
        const r = new Rng(5);
        const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => (r.next() * 2 - 1) * scale);
        const rank = 8;
        const layers = Array.from({ length: nLayers }, () => ({ rank, a: rand(rank * dim, 0.3), b: rand(hiddenDim * rank, 0.3), c: rand(hiddenDim, 0.1), threshold: 0 }));
        const out = new MemorySink();
        await writeWithPredictor(file, { dim, hiddenDim, layers, recallTarget: 0.9 }, out, { corpus: "random (reliability seed)" });
        bytes = out.bytes();
      }
      return { name, bytes, budget: await budgetFor(bytes, 0.4) };
    })();
    flmCache.set(name, p);
  }
  return p;
}

/** Names of the `.flm` seeds available on this machine. */
export function flmSeedNames(): string[] {
  const names = ["stories260K-f32", "stories260K-q8-a4096", "stories260K-f32-pred"];
  for (const s of llama2cSeeds().slice(1)) names.push(`${s.name}-${s.name.startsWith("babyllama") ? "q8" : "f32"}`);
  if (hasShared && existsSync(`${SHARED_MODELS}/shakespeare-relu-gpt/model.safetensors`)) names.push(OPT_SEED);
  return names;
}

/** The manifest JSON of a `.flm`, parsed (no validation). */
export function manifestOf(bytes: Uint8Array): any {
  const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  return JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + len)));
}

/** Start and length of the FFN sections (the bytes read during generation). */
export function ffnRange(bytes: Uint8Array): { offset: number; length: number } {
  const m = manifestOf(bytes);
  const layers = new Set(m.ffn.layers.map((l: { section: string }) => l.section));
  const s = m.sections.filter((x: { name: string }) => layers.has(x.name));
  const start = Math.min(...s.map((x: { offset: number }) => x.offset));
  const end = Math.max(...s.map((x: { offset: number; length: number }) => x.offset + x.length));
  return { offset: start, length: end - start };
}

// ---------------------------------------------------------------------------------------------------
// Instrumented heap
// ---------------------------------------------------------------------------------------------------

/** Bytes of guard pattern after every block. A multiple of 16: payload rounding stays unchanged. */
export const GUARD = 32;
const LIVE = 0x4c495645; // the allocator's live-block marker (crates/kernels/src/alloc.rs)

function guardByte(ptr: number, i: number): number {
  return ((ptr >>> 4) * 31 + i * 7 + 0xa5) & 0xff;
}

/**
 * A Kernels instance whose `alloc`/`free` are wrapped: every block gets GUARD pattern bytes after its
 * end (an out-of-bounds write past any block breaks them), frees check the pattern and the allocator's
 * header, a second free of the same block is recorded (not passed on), and the peak heap use of a case
 * is measured without the guards, to compare with the budget the case was opened with.
 */
export class HeapWatch {
  /** Problems seen since the last {@link take}: broken guards, broken headers, double frees, leaks. */
  problems: string[] = [];
  /** Heap bytes in use before the first case (the guards' blocks excluded). */
  readonly baseline: number;
  private readonly live = new Map<number, number>(); // ptr → requested bytes
  private peak = 0;
  private constructor(readonly kernels: Kernels) {
    const k = kernels;
    const alloc = k.alloc.bind(k);
    const free = k.free.bind(k);
    k.alloc = (bytes: number, align = 16): WasmBlock => {
      const b = alloc(Math.max(bytes, 1) + GUARD, align);
      const mem = k.u8(b.ptr + Math.max(bytes, 1), GUARD);
      for (let i = 0; i < GUARD; i++) mem[i] = guardByte(b.ptr, i);
      this.live.set(b.ptr, Math.max(bytes, 1));
      this.peak = Math.max(this.peak, this.used());
      return { ptr: b.ptr, bytes };
    };
    k.free = (block: WasmBlock | number): void => {
      const ptr = typeof block === "number" ? block : block.ptr;
      if (!this.live.has(ptr)) {
        this.problems.push(`double free (or foreign pointer) ${ptr}`);
        return;
      }
      this.checkBlock(ptr, "at free");
      this.live.delete(ptr);
      try {
        free(ptr);
      } catch (e) {
        this.problems.push(`free of ${ptr} failed: ${String(e)}`);
      }
    };
    this.baseline = k.heapUsed;
  }

  static async create(): Promise<HeapWatch> {
    return new HeapWatch(await Kernels.load());
  }

  /** Heap bytes in use now, guards excluded. */
  used(): number {
    return this.kernels.heapUsed - this.baseline - GUARD * this.live.size;
  }

  /** Starts measuring a case's peak. */
  begin(): void {
    this.peak = this.used();
  }

  /** Peak heap use since {@link begin}, guards excluded. */
  get peakBytes(): number {
    return this.peak;
  }

  /** Checks every live block's guard and header now. */
  checkLive(when: string): void {
    for (const ptr of this.live.keys()) this.checkBlock(ptr, when);
  }

  /** After a case: checks nothing is live (no leak) and the heap is back at its baseline; returns and clears the problems. */
  end(): string[] {
    if (this.live.size > 0) {
      this.problems.push(`leak: ${this.live.size} blocks (${[...this.live.values()].reduce((a, b) => a + b, 0)} bytes) still live`);
      for (const ptr of [...this.live.keys()]) this.kernels.free(ptr); // so the next case starts clean
    }
    if (this.kernels.heapUsed !== this.baseline) this.problems.push(`heap use ${this.kernels.heapUsed} != baseline ${this.baseline} after dispose`);
    return this.take();
  }

  /** Returns and clears the problems. */
  take(): string[] {
    const p = this.problems;
    this.problems = [];
    return p;
  }

  private checkBlock(ptr: number, when: string): void {
    const bytes = this.live.get(ptr)!;
    const k = this.kernels;
    const mem = k.u8(ptr + bytes, GUARD);
    for (let i = 0; i < GUARD; i++) {
      if (mem[i] !== guardByte(ptr, i)) {
        this.problems.push(`out-of-bounds write past the ${bytes}-byte block at ${ptr} (guard byte ${i}, ${when})`);
        break;
      }
    }
    const header = k.u32(ptr - 16, 4);
    if (header[1] !== LIVE) this.problems.push(`allocator header of block ${ptr} overwritten (${when})`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------------

/** "ok", "typed:<CODE>" (a FlashError), or "crash:<ErrorName>" (anything else: a failure). */
export function classify(e: unknown): string {
  if (e === undefined) return "ok";
  if (e instanceof FlashError) return `typed:${e.code}`;
  if (e instanceof WebAssembly.RuntimeError) return "crash:WasmTrap";
  return `crash:${(e as Error)?.name ?? typeof e}`;
}

/** Per-target tally of outcomes. */
export class Tally {
  readonly counts = new Map<string, number>();
  /** The first error message seen for each outcome. */
  readonly examples = new Map<string, string>();
  cases = 0;
  add(outcome: string, example?: string): void {
    this.cases++;
    this.counts.set(outcome, (this.counts.get(outcome) ?? 0) + 1);
    if (example !== undefined && !this.examples.has(outcome)) this.examples.set(outcome, example);
  }
  toString(): string {
    return [...this.counts.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ");
  }
}

// ---------------------------------------------------------------------------------------------------
// The engine's cache, checked against the file
// ---------------------------------------------------------------------------------------------------

interface FlashInternals {
  cache: NeuronCache;
  matrix: WasmBlock;
  layout: { neurons: number; bundleBytes: number; bundleStride: number; layerOffsets: readonly number[] };
  strategy: string;
}

/**
 * Checks a model's neuron cache against its model of itself and against the file: the live slots are
 * `0 … size-1`, slot↔neuron maps are inverse bijections, no load is pending, and every live slot holds
 * exactly the bytes of the bundle it claims (so no corrupted or half-read slot can be used). Returns
 * the problems found (empty when consistent).
 */
export function checkFlashCache(model: FlashModel, file: Uint8Array): string[] {
  const f = model.flash as unknown as FlashInternals;
  const { cache, matrix, layout } = f;
  const problems: string[] = [];
  const c = cache as unknown as { reserved: number; slotOfNeuron: Int32Array; neuronOfSlot: Int32Array };
  // Slots reserved by a lookahead prefetch still in flight are legitimate; any other reservation is not.
  const pending = (f as unknown as { pending?: unknown }).pending;
  if (c.reserved !== 0 && !pending) problems.push(`${c.reserved} slots still reserved`);
  if (cache.size < 0 || cache.size > cache.capacity) problems.push(`size ${cache.size} outside [0, ${cache.capacity}]`);
  let mapped = 0;
  for (let n = 0; n < c.slotOfNeuron.length; n++) {
    const s = c.slotOfNeuron[n];
    if (s < 0) continue;
    mapped++;
    if (s >= cache.size) problems.push(`neuron ${n} maps to slot ${s}, not live (size ${cache.size})`);
    else if (c.neuronOfSlot[s] !== n) problems.push(`neuron ${n} → slot ${s} → neuron ${c.neuronOfSlot[s]}`);
  }
  if (mapped !== cache.size) problems.push(`${mapped} neurons mapped, ${cache.size} live slots`);
  const mem = model.kernels.u8(matrix.ptr, cache.capacity * layout.bundleStride);
  const windowed = f.strategy === "windowed";
  for (let s = 0; s < cache.size; s++) {
    const id = c.neuronOfSlot[s];
    if (id < 0) {
      problems.push(`live slot ${s} holds no neuron`);
      continue;
    }
    // Windowed ids are layer·neurons + i; the other strategies keep one layer and clear per layer run,
    // so their slots' layer is unknown here: check that the bytes match the neuron in some layer.
    const layers = windowed ? [Math.floor(id / layout.neurons)] : layout.layerOffsets.map((_, l) => l);
    const i = windowed ? id % layout.neurons : id;
    const slot = mem.subarray(s * layout.bundleStride, s * layout.bundleStride + layout.bundleBytes);
    const ok = layers.some((l) => {
      const at = layout.layerOffsets[l] + i * layout.bundleStride;
      const want = file.subarray(at, at + layout.bundleBytes);
      for (let b = 0; b < want.length; b++) if (want[b] !== slot[b]) return false;
      return true;
    });
    if (!ok) problems.push(`slot ${s} (neuron ${id}) does not hold that neuron's bundle`);
    if (problems.length > 20) break;
  }
  return problems;
}

/**
 * A budget that gives the neuron cache `fraction` of all the model's neurons at `contextLength`
 * positions (so evictions happen), computed from the plan of an unlimited open.
 */
export async function budgetFor(bytes: Uint8Array, fraction: number, contextLength?: number): Promise<number> {
  const model = await openFlashModel(new MemorySource(bytes), { contextLength });
  const p = model.memoryPlan;
  await model.dispose();
  return Math.ceil(p.residentBytes + p.stateBytes + p.ffnScratchBytes + fraction * p.cacheBytes);
}

/**
 * Keeps track of the models a test opens, so an afterEach can dispose what a failed test left behind
 * (and the next test's leak check stays meaningful). Disposing through the tracker is idempotent.
 */
export class ModelTracker {
  private readonly live = new Set<{ dispose(): Promise<void> }>();
  track<T extends { dispose(): Promise<void> }>(model: T): T {
    const dispose = model.dispose.bind(model);
    let done = false;
    model.dispose = async () => {
      if (done) return;
      done = true;
      this.live.delete(model);
      await dispose();
    };
    this.live.add(model);
    return model;
  }
  async disposeAll(): Promise<void> {
    for (const m of [...this.live]) await m.dispose().catch(() => {});
  }
}

/** Opens a seed from memory with the instrumented kernels. */
export function openSeed(bytes: Uint8Array, watch: HeapWatch, opts: OpenFlashOptions = {}): Promise<FlashModel> {
  return openFlashModel(new MemorySource(bytes), { kernels: watch.kernels, ...opts });
}

/** Collects a generation's token ids. */
export async function tokensOf(model: FlashModel | { generate: FlashModel["generate"] }, prompt: string, opts: Parameters<FlashModel["generate"]>[1] = {}): Promise<number[]> {
  const out: number[] = [];
  for await (const t of model.generate(prompt, opts)) out.push(t.token);
  return out;
}

/** Validates a manifest without opening a model (for quick checks in tests). */
export async function manifestOk(bytes: Uint8Array): Promise<boolean> {
  try {
    await openFlm(new MemorySource(bytes));
    return true;
  } catch {
    return false;
  }
}

/** RSS and WASM figures in MiB, for the report. */
export function mib(n: number): string {
  return (n / (1024 * 1024)).toFixed(2);
}

/** The tiny BPE `tokenizer.json` of test/data, stored as the `.flm` keeps it: `{ tokenizer, config }`. */
export function hfTokenizerSeed(): Uint8Array {
  const read = (f: string) => JSON.parse(new TextDecoder().decode(readBytes(`${ROOT}test/data/tiny-bpe/${f}`)));
  return new TextEncoder().encode(JSON.stringify({ tokenizer: read("tokenizer.json"), config: read("tokenizer_config.json") }));
}

let ggufSeedCache: { name: string; bytes: Uint8Array; headerBytes: number }[] | undefined;
/** GGUF files written from the shipped stories260K (F32 and Q4_0 matrices), with where their headers end. */
export async function ggufSeeds(): Promise<{ name: string; bytes: Uint8Array; headerBytes: number }[]> {
  if (ggufSeedCache) return ggufSeedCache;
  const { storiesGguf } = await import("../gguf-helpers.js");
  const { GgmlType, MemorySource, openGguf } = await import("@flashllm/sdk/internal");
  const out = [];
  for (const [name, type] of [["stories260K-f32", GgmlType.F32], ["stories260K-q4_0", GgmlType.Q4_0]] as const) {
    const bytes = await storiesGguf(type);
    out.push({ name, bytes, headerBytes: (await openGguf(new MemorySource(bytes))).dataOffset });
  }
  return (ggufSeedCache = out);
}
