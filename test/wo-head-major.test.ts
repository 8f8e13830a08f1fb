// The output projection stored head-major (container version 2, docs/FORMAT.md §3.2.1): the stored
// bytes against an index-by-index permutation of the row-major file, logits bit for bit between files
// written in the old and the new layout (one instance and 2-3 shards; GQA, heads not dividing K, block
// dtypes), and the bytes each shard reads at open, counted by an instrumented source.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FlmWriter, GgmlType, MemorySink, MemorySource, ShardEngine, convertGguf, convertTensors, encodeManifest, openFlm, planShards, syntheticTokenizer, validateManifest, writeWithPredictor,
  type Dtype, type FlashSource, type FlmDeclaration, type Manifest, type ModelConfig, type ReadRequest, type ShardConfig,
} from "@flashllm/sdk/internal";
import { NodeFileSource, convertFile, openModelFile } from "@flashllm/node-io";
import { NodeFileSink } from "../packages/node-io/src/file-sink.js";
import { ROOT, STORIES_BIN, STORIES_TOK, rng } from "./helpers.js";
import { storiesGguf } from "./gguf-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "flashllm-wohead-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** stories260K q8 written by the converter before version 2 (row-major wo, container version 1). */
const OLD_Q8 = `${ROOT}test/data/stories260K-q8-v1.flm`;

/** Teacher-forced logits of `tokens` (copies). */
async function logitsOf(path: string, workers: number, tokens: number[]): Promise<Float32Array[]> {
  const model = await openModelFile(path, { workers, contextLength: 32, selector: "all" }); // dense: predictors (if any) unused
  try {
    const out: Float32Array[] = [];
    for (let pos = 0; pos < tokens.length; pos++) out.push((await model.transformer.forward(tokens[pos], pos)).slice());
    return out;
  } finally {
    await model.dispose();
  }
}

/** Asserts two logit sequences are the same floats, bit for bit. */
function expectIdentical(a: Float32Array[], b: Float32Array[], what: string): void {
  expect(a.length).toBe(b.length);
  for (let p = 0; p < a.length; p++) {
    const x = new Uint32Array(a[p].buffer, a[p].byteOffset, a[p].length);
    const y = new Uint32Array(b[p].buffer, b[p].byteOffset, b[p].length);
    let diff = -1;
    for (let v = 0; v < x.length && diff < 0; v++) if (x[v] !== y[v]) diff = v;
    expect(diff, `${what}: position ${p}, first differing logit`).toBe(-1);
  }
}

async function manifestOf(path: string): Promise<Manifest> {
  const source = await NodeFileSource.open(path);
  try {
    return (await openFlm(source)).manifest;
  } finally {
    await source.close();
  }
}

describe("the column-blocked layout in the container", () => {
  const rows = 24;
  const cols = 128;
  const block = 32;
  const declare = (dtype: Dtype, columnBlock?: number): FlmDeclaration => ({
    architecture: "llama",
    config: { dim: 128, hiddenDim: 8, nLayers: 1, nHeads: 4, nKvHeads: 2, vocabSize: 8, seqLen: 8, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", activation: "silu", gated: true, sharedClassifier: false, norm: "rmsnorm" },
    dtype: { resident: dtype, ffn: "f32" },
    tensors: [{ name: "before", shape: [5] }, { name: "m", shape: [rows, cols], dtype, ...(columnBlock ? { columnBlock } : {}) }, { name: "after", shape: [3], dtype: "f32" }],
    tokenizer: { kind: "none", byteLength: 0 },
  });
  const write = async (decl: FlmDeclaration, values: Parameters<FlmWriter["writeTensor"]>[1]): Promise<Uint8Array> => {
    const sink = new MemorySink();
    const w = new FlmWriter(sink, decl);
    await w.writeTensor("before", Float32Array.from([1, 2, 3, 4, 5]));
    await w.writeTensor("m", values);
    await w.writeTensor("after", Float32Array.from([6, 7, 8]));
    await w.writeLayer(0, () => ({ gate: new Float32Array(128), up: new Float32Array(128), down: new Float32Array(128) }));
    await w.finish();
    return sink.bytes();
  };

  it.each(["f32", "q8", "f16", "q8_0", "q4_0"] as const)("%s: stored bytes are the row-major file's, block by block; both read back alike", async (dtype) => {
    const r = rng(dtype.length * 7 + 1);
    const values = Float32Array.from({ length: rows * cols }, () => r() * 2 - 1);
    const oldBytes = await write(declare(dtype), values);
    const newBytes = await write(declare(dtype, block), values);
    const oldFile = await openFlm(new MemorySource(oldBytes));
    const newFile = await openFlm(new MemorySource(newBytes));
    expect([oldFile.header.version, oldFile.manifest.version]).toEqual([1, 1]);
    expect([newFile.header.version, newFile.manifest.version]).toEqual([2, 2]);
    const tOld = oldFile.manifest.tensors[1];
    const tNew = newFile.manifest.tensors[1];
    expect(tNew.columnBlock).toBe(block);
    expect(tNew.length).toBe(tOld.length);
    const oldRes = await oldFile.readSection("resident");
    const newRes = await newFile.readSection("resident");
    // Reference permutation, index by index: stored[b][r][j] = rowMajor[r][b·block + j] (per-row bytes).
    const rowLen = tOld.length / rows;
    const blockRow = rowLen / (cols / block);
    for (let b = 0; b < cols / block; b++) {
      for (let row = 0; row < rows; row++) {
        for (let j = 0; j < blockRow; j++) {
          const stored = newRes[tNew.offset + (b * rows + row) * blockRow + j];
          const expected = oldRes[tOld.offset + row * rowLen + b * blockRow + j];
          if (stored !== expected) expect(stored, `block ${b} row ${row} byte ${j}`).toBe(expected);
        }
      }
    }
    // Everything else in the section (scales, other tensors, padding) is where and as it was.
    const outside = (res: Uint8Array, t: typeof tOld) => [...res.subarray(0, t.offset), ...res.subarray(t.offset + t.length)];
    expect(outside(newRes, tNew)).toEqual(outside(oldRes, tOld));
    // readResident gives the row-major tensor back from either file.
    const a = (await oldFile.readResident()).get("m")!;
    const n = (await newFile.readResident()).get("m")!;
    expect(n).toEqual(a);
    expect((await newFile.verifyAll()).ok).toBe(true);
    // Already-encoded rows (a GGUF's blocks, a q8 tensor copied by calibrate) give the same file.
    const encoded = a.dtype === "f32" ? a.data : a.dtype === "q8" ? { q: a.q, scales: a.scales } : { dtype: a.dtype, raw: a.raw };
    expect(Buffer.compare(await write(declare(dtype, block), encoded), newBytes)).toBe(0);
  });

  it("refuses column blocks that do not fit, with typed errors naming the field", async () => {
    const good = validateManifest(JSON.parse(new TextDecoder().decode(encodeManifest((await openFlm(new MemorySource(await write(declare("f32", 32), new Float32Array(rows * cols))))).manifest))), 1 << 30);
    const bad = (edit: (m: any) => void) => {
      const m = structuredClone(good) as any;
      edit(m);
      try {
        validateManifest(m, 1 << 30);
      } catch (e) {
        return e as { code: string; details: Record<string, unknown> };
      }
      throw new Error("accepted");
    };
    expect(bad((m) => (m.version = 1))).toMatchObject({ code: "BAD_MANIFEST", details: { field: "tensors[1].columnBlock" } });
    expect(bad((m) => (m.tensors[1].columnBlock = 48))).toMatchObject({ code: "WRONG_DIMS", details: { field: "tensors[1].columnBlock" } });
    expect(bad((m) => (m.tensors[1].columnBlock = 0))).toMatchObject({ code: "WRONG_DIMS" });
    expect(bad((m) => (m.tensors[0].columnBlock = 5))).toMatchObject({ code: "WRONG_DIMS", details: { field: "tensors[0].columnBlock" } });
    expect(() => new FlmWriter(new MemorySink(), declare("q8_0", 16))).toThrow(/columnBlock.*multiple of 32/);
  });
});

describe("stories260K: files written before and after", () => {
  const NEW_Q8 = join(dir, "stories-q8.flm");
  const NEW_F32 = join(dir, "stories-f32.flm");
  const OLD_F32 = join(dir, "stories-f32-rows.flm");
  const ROWS_Q8 = join(dir, "stories-q8-rows.flm");
  // 30 positions of a run.c greedy story (so attention spans many positions).
  const tokens = [1, 403, 407, 261, 378, 11, 300, 280, 265, 480, 426, 269, 375, 273, 419, 261, 360, 287, 268, 282, 365, 270, 261, 360, 287, 268, 505, 266, 280, 312];

  beforeAll(async () => {
    await convertFile(STORIES_BIN, STORIES_TOK, NEW_Q8, { dtype: "q8" });
    await convertFile(STORIES_BIN, STORIES_TOK, NEW_F32, { dtype: "f32" });
    await convertFile(STORIES_BIN, STORIES_TOK, OLD_F32, { dtype: "f32", woLayout: "rows" });
    await convertFile(STORIES_BIN, STORIES_TOK, ROWS_Q8, { dtype: "q8", woLayout: "rows" });
  });

  it("the converter writes wo head-major (version 2); woLayout rows writes what the old converter wrote", async () => {
    const neu = await manifestOf(NEW_Q8);
    expect(neu.version).toBe(2);
    const wo = neu.tensors.filter((t) => /^layers\.\d+\.wo$/.test(t.name));
    expect(wo.length).toBe(5);
    for (const t of wo) expect(t.columnBlock).toBe(8); // head size 64 / 8
    expect(neu.tensors.filter((t) => t.columnBlock !== undefined).length).toBe(5);
    // The committed old file and today's row-major writer: the same sections, byte for byte.
    const old = await manifestOf(OLD_Q8);
    const rows = await manifestOf(ROWS_Q8);
    expect(old.version).toBe(1);
    expect(rows.version).toBe(1);
    expect(rows.sections).toEqual(old.sections);
    expect(rows.tensors).toEqual(old.tensors);
  });

  it("GGUF conversion writes wo head-major; a Q8_0 head of 8 values cannot hold a block, so it stays row-major (version 1)", async () => {
    const f32 = new MemorySink();
    await convertGguf(new MemorySource(await storiesGguf(GgmlType.F32)), f32);
    const a = (await openFlm(new MemorySource(f32.bytes()))).manifest;
    expect([a.version, a.tensors.find((t) => t.name === "layers.4.wo")!.columnBlock]).toEqual([2, 8]);
    const q8_0 = new MemorySink();
    await convertGguf(new MemorySource(await storiesGguf(GgmlType.Q8_0)), q8_0);
    const b = (await openFlm(new MemorySource(q8_0.bytes()))).manifest;
    expect(b.tensors.find((t) => t.name === "layers.4.wo")!.dtype).toBe("q8_0");
    expect([b.version, b.tensors.some((t) => t.columnBlock !== undefined)]).toEqual([1, false]);
  });

  it.each([1, 2, 3])("workers %i: logits bit for bit between the old-layout and the head-major file (f32 and q8)", async (k) => {
    expectIdentical(await logitsOf(NEW_Q8, k, tokens), await logitsOf(OLD_Q8, k, tokens), `q8, ${k} workers`);
    expectIdentical(await logitsOf(NEW_F32, k, tokens), await logitsOf(OLD_F32, k, tokens), `f32, ${k} workers`);
  });

  it("calibrate's rewrite turns an old-layout file into a head-major one with the same tensors", async () => {
    const source = await NodeFileSource.open(OLD_Q8);
    const out = join(dir, "rewritten.flm");
    try {
      const file = await openFlm(source);
      const c = file.manifest.config;
      const layer = { rank: 1, threshold: 0, a: new Float32Array(c.dim), b: new Float32Array(c.hiddenDim), c: new Float32Array(c.hiddenDim) };
      const sink = await NodeFileSink.create(out);
      await writeWithPredictor(file, { dim: c.dim, hiddenDim: c.hiddenDim, layers: Array.from({ length: c.nLayers }, () => layer) }, sink);
      await sink.commit();
      const oldTensors = await file.readResident();
      const copy = await NodeFileSource.open(out);
      try {
        const rewritten = await openFlm(copy);
        expect(rewritten.manifest.version).toBe(2);
        expect(rewritten.manifest.tensors.find((t) => t.name === "layers.0.wo")!.columnBlock).toBe(8);
        const newTensors = await rewritten.readResident();
        for (const [name, t] of oldTensors) expect(newTensors.get(name), name).toEqual(t);
      } finally {
        await copy.close();
      }
    } finally {
      await source.close();
    }
    expectIdentical(await logitsOf(out, 2, tokens.slice(0, 12)), await logitsOf(OLD_Q8, 2, tokens.slice(0, 12)), "rewritten, 2 workers");
  });
});

/**
 * A random Llama-shaped model with a head size of 32 (so q8_0/q4_0 can be cut per head), GQA
 * (4 query heads on 2 KV heads) and a separate classifier.
 */
function randomModel(): { config: ModelConfig; tensors: Map<string, Float32Array> } {
  const config: ModelConfig = { dim: 128, hiddenDim: 96, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 300, seqLen: 32, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "interleaved", activation: "silu", gated: true, sharedClassifier: false, norm: "rmsnorm" };
  const r = rng(2024);
  const t = new Map<string, Float32Array>();
  const rand = (n: number, scale: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale);
  const { dim, hiddenDim: h, vocabSize: v } = config;
  const kv = (dim * config.nKvHeads) / config.nHeads;
  t.set("tok_embeddings", rand(v * dim, 1));
  t.set("output", rand(v * dim, 0.2));
  t.set("norm", rand(dim, 0.2).map((x) => 1 + x));
  for (let l = 0; l < config.nLayers; l++) {
    const L = `layers.${l}.`;
    t.set(L + "attn_norm", rand(dim, 0.2).map((x) => 1 + x));
    t.set(L + "ffn_norm", rand(dim, 0.2).map((x) => 1 + x));
    t.set(L + "wq", rand(dim * dim, 0.15));
    t.set(L + "wk", rand(kv * dim, 0.15));
    t.set(L + "wv", rand(kv * dim, 0.15));
    t.set(L + "wo", rand(dim * dim, 0.15));
    t.set(L + "w1", rand(h * dim, 0.15));
    t.set(L + "w2", rand(dim * h, 0.15));
    t.set(L + "w3", rand(h * dim, 0.15));
  }
  return { config, tensors: t };
}

async function writeRandom(path: string, dtype: Dtype, woLayout: "heads" | "rows"): Promise<void> {
  const { config, tensors } = randomModel();
  const sink = await NodeFileSink.create(path);
  await convertTensors({ config, getTensor: (n) => tensors.get(n)! }, { kind: "llama2c", bytes: syntheticTokenizer(config.vocabSize) }, sink, { dtype, woLayout });
  await sink.commit();
}

describe("a GQA model with 32-wide heads, in every resident dtype", () => {
  const tokens = [1, 7, 260, 42, 299, 3, 150, 77, 201, 12];
  it.each(["q8_0", "q4_0", "f16", "q8"] as const)("%s: head-major and row-major files give the same logits with 1, 2 and 3 workers", async (dtype) => {
    const neu = join(dir, `random-${dtype}.flm`);
    const old = join(dir, `random-${dtype}-rows.flm`);
    await writeRandom(neu, dtype, "heads");
    await writeRandom(old, dtype, "rows");
    expect((await manifestOf(neu)).tensors.find((t) => t.name === "layers.1.wo")!.columnBlock).toBe(32);
    expect((await manifestOf(old)).version).toBe(1);
    for (const k of [1, 2, 3]) {
      // K=3 over 2 KV heads: the third shard owns no heads.
      const a = await logitsOf(neu, k, tokens);
      expectIdentical(a, await logitsOf(old, k, tokens), `${dtype}, ${k} workers`);
      expect(a[9].some((x) => x !== 0)).toBe(true);
    }
  });
});

/** A source that records every read (offset, length) it serves. */
class CountingSource implements FlashSource {
  readonly reads: { offset: number; length: number }[] = [];
  constructor(private readonly inner: FlashSource) {}
  get byteLength(): number {
    return this.inner.byteLength;
  }
  read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    for (const r of requests) this.reads.push({ offset: r.offset, length: r.length });
    return this.inner.read(requests, signal);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  /**
   * Reads after the header's: `openFlm` reads the first 64 KiB (header and manifest) whatever they
   * hold, which in a toy file covers some tensors too.
   */
  get loads(): { offset: number; length: number }[] {
    return this.reads.filter((r) => r.offset !== 0);
  }
  /** Bytes of {@link loads} inside [start, end). */
  bytesIn(start: number, end: number): number {
    return this.loads.reduce((n, r) => n + Math.max(0, Math.min(end, r.offset + r.length) - Math.max(start, r.offset)), 0);
  }
}

/** Opens shard `index` of `k` in this process over a counting source; returns the source's reads. */
async function openShardCounting(path: string, k: number, index: number): Promise<{ source: CountingSource; manifest: Manifest }> {
  const source = new CountingSource(await NodeFileSource.open(path));
  const manifest = (await openFlm(source)).manifest;
  const slices = planShards(manifest.config, k);
  const cfg: ShardConfig = { slices, index, contextLength: 8, strategy: "windowed", capacity: slices[index].neurons.count, stagingBytes: 64 * 1024, selector: "all" };
  source.reads.length = 0;
  const { engine } = await ShardEngine.open(source, cfg);
  await engine.dispose();
  await source.close();
  return { source, manifest };
}

describe("bytes each shard reads at open", () => {
  it.each([2, 3])("K=%i: a shard reads only its heads' span of wo (dim·dim/K bytes per layer for q8), not whole rows", async (k) => {
    const neu = join(dir, "stories-q8-count.flm");
    await convertFile(STORIES_BIN, STORIES_TOK, neu, { dtype: "q8" });
    let newTotal = 0;
    for (let s = 0; s < k; s++) {
      const before = await openShardCounting(OLD_Q8, k, s);
      const after = await openShardCounting(neu, k, s);
      const m = after.manifest;
      const c = m.config;
      const hs = c.dim / c.nHeads;
      const slice = planShards(c, k)[s];
      const resident = m.sections.find((x) => x.name === "resident")!.offset;
      for (let l = 0; l < c.nLayers; l++) {
        const wo = (mm: Manifest) => mm.tensors.find((t) => t.name === `layers.${l}.wo`)!;
        const tNew = wo(m);
        const tOld = wo(before.manifest);
        const oldBytes = before.source.bytesIn(resident + tOld.offset, resident + tOld.offset + tOld.length);
        const newBytes = after.source.bytesIn(resident + tNew.offset, resident + tNew.offset + tNew.length);
        // Old layout: every whole row (dim·dim q8 bytes). New: the rows of its heads' columns only.
        expect(oldBytes, `shard ${s} layer ${l}, old layout`).toBe(c.dim * c.dim);
        expect(newBytes, `shard ${s} layer ${l}, head-major`).toBe(c.dim * slice.heads.count * hs);
        // The span is exactly its heads' blocks, at the head's offset.
        const span = after.source.loads.filter((r) => r.offset >= resident + tNew.offset && r.offset < resident + tNew.offset + tNew.length);
        expect(span).toEqual([{ offset: resident + tNew.offset + slice.heads.first * c.dim * hs, length: slice.heads.count * c.dim * hs }]);
        newTotal += newBytes;
        // The per-row scales are read whole by both (every head block uses them).
        expect(after.source.bytesIn(resident + tNew.scaleOffset!, resident + tNew.scaleOffset! + c.dim * 4)).toBe(c.dim * 4);
      }
      // All else equal: the shard's total reads shrink by exactly the wo bytes it no longer reads.
      const total = (x: CountingSource) => x.loads.reduce((n, r) => n + r.length, 0);
      expect(total(before.source) - total(after.source)).toBe(c.nLayers * (c.dim * c.dim - c.dim * slice.heads.count * hs));
    }
    // Between them the shards read each wo exactly once.
    const c = (await manifestOf(neu)).config;
    expect(newTotal).toBe(c.nLayers * c.dim * c.dim);
  });
});
