import { describe, expect, it } from "vitest";
import { MemorySource } from "../../src/source.js";
import type { FlashSource, ReadRequest } from "../../src/source.js";
import { FlmWriter, MemorySink, encodeHeader, encodeManifest, openFlm, planFlm } from "../../src/format/index.js";
import type { FlmDeclaration } from "../../src/format/index.js";
import { DIM, HIDDEN, LAYERS, RecordingSink, errorOf, makeModel, writeModel } from "./helpers.js";

const model = makeModel({ gated: true, dtype: "q8" });
const row = () => new Float32Array(DIM);
const neuron = () => ({ gate: row(), up: row(), down: row() });

describe("FlmWriter misuse", () => {
  it("rejects bad declarations before writing anything", async () => {
    const sink = new RecordingSink();
    let e = await errorOf(() => new FlmWriter(sink, { ...model.decl, config: { ...model.decl.config, dim: 1 << 20 } }));
    expect([e.code, e.details.field]).toEqual(["WRONG_DIMS", "config.dim"]);
    e = await errorOf(() => new FlmWriter(sink, { ...model.decl, bundleAlignment: 48 }));
    expect(e.code).toBe("BAD_ARGUMENT");
    e = await errorOf(() => new FlmWriter(sink, { ...model.decl, tokenizer: { kind: "llama2c", byteLength: -1 } }));
    expect(e.code).toBe("BAD_ARGUMENT");
    e = await errorOf(() => new FlmWriter(sink, { ...model.decl, tensors: [{ name: "a", shape: [2] }, { name: "a", shape: [2] }] }));
    expect(e.details.field).toBe("tensors[1].name");
    e = await errorOf(() => new FlmWriter(sink, { ...model.decl, tokenizer: { kind: "none", byteLength: 5 } }));
    expect(e.code).toBe("SIZE_MISMATCH");
    expect(sink.ranges).toEqual([]);
  });

  it("checks tensor order and sizes", async () => {
    const w = new FlmWriter(new MemorySink(), model.decl);
    expect((await errorOf(() => w.writeTensor("norm", new Float32Array(DIM)))).code).toBe("BAD_ARGUMENT");
    expect((await errorOf(() => w.writeTensor("tok_embeddings", new Float32Array(5)))).code).toBe("BAD_ARGUMENT");
    expect((await errorOf(() => w.writeTensor("tok_embeddings", { q: new Int8Array(5), scales: new Float32Array(32) }))).code).toBe("BAD_ARGUMENT");
    await w.writeTensor("tok_embeddings", model.tensors.get("tok_embeddings")!); // still usable: argument errors do not poison
  });

  it("checks the tokenizer and layers, and finish reports what is missing", async () => {
    const w = new FlmWriter(new MemorySink(), model.decl);
    expect((await errorOf(() => w.writeTokenizer(new Uint8Array(3)))).code).toBe("BAD_ARGUMENT");
    await w.writeTokenizer(model.tokenizer);
    expect((await errorOf(() => w.writeTokenizer(model.tokenizer))).code).toBe("BAD_ARGUMENT");
    for (const l of [-1, LAYERS, 0.5]) expect((await errorOf(() => w.writeLayer(l, neuron))).code).toBe("BAD_ARGUMENT");
    await w.writeLayer(0, neuron);
    expect((await errorOf(() => w.writeLayer(0, neuron))).code).toBe("BAD_ARGUMENT");
    let e = await errorOf(() => w.finish());
    expect(e.message).toMatch(/tok_embeddings/);
    for (const t of model.decl.tensors) await w.writeTensor(t.name, model.tensors.get(t.name)!);
    e = await errorOf(() => w.finish());
    expect(e.details.layers).toEqual([1]);
  });

  it("rejects bad neurons, and a failure mid-write poisons the writer", async () => {
    const w = new FlmWriter(new MemorySink(), model.decl);
    let e = await errorOf(() => w.writeLayer(0, () => ({ up: row(), down: row() })));
    expect(e.code).toBe("BAD_ARGUMENT");
    e = await errorOf(() => w.writeTokenizer(model.tokenizer));
    expect(e.message).toMatch(/earlier write failed/);
    const w2 = new FlmWriter(new MemorySink(), model.decl);
    expect((await errorOf(() => w2.writeLayer(1, () => new Uint8Array(3)))).code).toBe("BAD_ARGUMENT");
  });

  it("propagates sink failures", async () => {
    const w = new FlmWriter({ write: async () => Promise.reject(new Error("disk full")) }, model.decl);
    await expect(w.writeTokenizer(model.tokenizer)).rejects.toThrow("disk full");
  });

  it("refuses overlapping calls (BUSY) and calls after finish", async () => {
    const { writer } = await writeModel(model);
    expect((await errorOf(() => writer.finish())).code).toBe("BAD_ARGUMENT");
    // A sink whose first write hangs until released.
    let release!: () => void;
    let held = false;
    const slow = { write: () => (held ? Promise.resolve() : ((held = true), new Promise<void>((r) => (release = r)))) };
    const w = new FlmWriter(slow, model.decl);
    const first = w.writeTokenizer(model.tokenizer);
    expect((await errorOf(() => w.writeLayer(0, neuron))).code).toBe("BUSY");
    release();
    await first;
  });

  it("keeps FFN writes to the chunk size (memory stays bounded)", async () => {
    const { sink, writer } = await writeModel(model, new RecordingSink(), 1000);
    const ffnStart = writer.plan.manifest.sections.find((s) => s.name === "ffn.0")!.offset;
    const stride = writer.bundleLayout.bundleStride;
    const ffnWrites = sink.ranges.filter(([a]) => a >= ffnStart).map(([a, b]) => b - a);
    expect(Math.max(...ffnWrites)).toBeLessThanOrEqual(Math.max(1000, stride, 4095));
  });

  it("writes a file with no resident tensors and no tokenizer", async () => {
    const decl: FlmDeclaration = { ...model.decl, tensors: [], tokenizer: { kind: "none", byteLength: 0 } };
    const sink = new RecordingSink();
    const w = new FlmWriter(sink, decl);
    for (let l = 0; l < LAYERS; l++) await w.writeLayer(l, neuron);
    await w.finish();
    sink.expectTiles(w.fileSize);
    const file = await openFlm(new MemorySource(sink.bytes()));
    expect((await file.readResident()).size).toBe(0);
    expect((await file.readTokenizer()).byteLength).toBe(0);
    expect((await file.verifyAll()).ok).toBe(true);
  });
});

describe("7B-sized layouts (offsets above 4 GiB)", () => {
  const decl7b: FlmDeclaration = {
    architecture: "llama",
    config: { dim: 4096, hiddenDim: 11008, nLayers: 32, nHeads: 32, nKvHeads: 32, vocabSize: 32000, seqLen: 4096, normEps: 1e-5, ropeTheta: 10000, ropeStyle: "neox", activation: "silu", gated: true, sharedClassifier: false, norm: "rmsnorm" },
    dtype: { resident: "f32", ffn: "f32" },
    tensors: [
      { name: "tok_embeddings", shape: [32000, 4096] },
      ...Array.from({ length: 32 }, (_, l) => [`wq`, `wk`, `wv`, `wo`].map((n) => ({ name: `layers.${l}.${n}`, shape: [4096, 4096] }))).flat(),
      { name: "output", shape: [32000, 4096] },
    ],
    tokenizer: { kind: "llama2c", byteLength: 433_869 },
    bundleAlignment: 4096,
  };

  it("plans exact offsets past 2^32 and opens such a file", async () => {
    const plan = planFlm(decl7b);
    const m = plan.manifest;
    expect(m.ffn.bundleBytes).toBe(16 + 3 * 4096 * 4);
    expect(m.ffn.bundleStride).toBe(53248);
    const last = m.sections[m.sections.length - 1];
    expect(last.name).toBe("ffn.31");
    expect(last.offset).toBeGreaterThan(2 ** 32);
    expect(plan.fileSize).toBe(last.offset + 11008 * 53248);
    expect(plan.fileSize % 4096).toBe(0);
    // A source that only has the header and manifest: openFlm reads nothing past its first 64 KiB.
    const head = new Uint8Array(plan.dataStart);
    const json = encodeManifest(m);
    head.set(encodeHeader(json.byteLength, m.version));
    head.set(json, 16);
    const reads: ReadRequest[] = [];
    const source: FlashSource = {
      byteLength: plan.fileSize,
      async read(requests) {
        for (const r of requests) {
          reads.push(r);
          r.target.set(head.subarray(r.offset, r.offset + r.length));
        }
      },
      async close() {},
    };
    const file = await openFlm(source);
    expect(reads.length).toBeLessThanOrEqual(2);
    expect(reads.every((r) => r.offset + r.length <= Math.max(plan.dataStart, 65536))).toBe(true);
    expect(file.bundleOffset(31, 11007)).toBe(last.offset + 11007 * 53248);
    expect(file.bundleOffset(31, 11007) % 4096).toBe(0);
    // The same file cut short by a byte is truncated.
    const e = await errorOf(() => openFlm({ ...source, byteLength: plan.fileSize - 4096 - 1 }));
    expect([e.code, e.details.section]).toEqual(["TRUNCATED", "ffn.31"]);
  });
});

it("has HIDDEN neurons per layer in the test model", () => expect(model.neurons[0].length).toBe(HIDDEN));
