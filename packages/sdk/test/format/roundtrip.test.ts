import { describe, expect, it } from "vitest";
import { MemorySource } from "../../src/source.js";
import { BUNDLE_FIELDS, FlmWriter, HEADER_BYTES, SECTION_ALIGNMENT, crc32, openFlm, residentData, unpackBundle } from "../../src/format/index.js";
import type { FlmFile, ResidentTensor } from "../../src/format/index.js";
import { HIDDEN, LAYERS, RecordingSink, makeModel, manifestJson, refQuantize, writeModel } from "./helpers.js";
import type { TestModel, Variant } from "./helpers.js";

const variants: Variant[] = [
  { gated: true, dtype: "f32" },
  { gated: true, dtype: "q8" },
  { gated: false, dtype: "f32" },
  { gated: false, dtype: "q8" },
  { gated: true, dtype: "q8", alignment: 4096 },
  { gated: false, dtype: "f32", alignment: 64, tokenizer: false },
];

const label = (v: Variant) => `${v.gated ? "gated" : "ungated"} ${v.dtype}${v.alignment ? ` align ${v.alignment}` : ""}${v.tokenizer === false ? " no tokenizer" : ""}`;

/** Writes every part of an open file back through a writer, from what the reader returns. */
async function rewrite(model: TestModel, file: FlmFile, resident: Map<string, ResidentTensor>, alignment?: number): Promise<Uint8Array> {
  const sink = new RecordingSink();
  const decl = alignment === undefined ? model.decl : { ...model.decl, bundleAlignment: alignment };
  const writer = new FlmWriter(sink, decl);
  for (const t of model.decl.tensors) {
    const r = resident.get(t.name)!;
    await writer.writeTensor(t.name, residentData(r));
  }
  if (model.tokenizer.byteLength > 0) await writer.writeTokenizer(await file.readTokenizer());
  for (let l = 0; l < LAYERS; l++) await writer.writeLayer(l, (i) => file.readBundle(l, i));
  await writer.finish();
  sink.expectTiles(writer.fileSize);
  return sink.bytes();
}

describe.each(variants)("round trip: $gated gated, $dtype, alignment $alignment", (v) => {
  it(`writes every byte once and lays sections out on 4096 boundaries (${label(v)})`, async () => {
    const model = makeModel(v);
    const { bytes, writer, sink } = await writeModel(model);
    sink.expectTiles(writer.fileSize);
    expect(bytes.byteLength).toBe(writer.fileSize);
    expect(bytes.byteLength % SECTION_ALIGNMENT).toBe(0);
    expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe("FLASHLLM");
    const view = new DataView(bytes.buffer);
    expect(view.getUint32(8, true)).toBe(1);
    const m = manifestJson(bytes);
    expect(m.sections.map((s: any) => s.name)).toEqual(["resident", "tokenizer", "ffn.crc", "ffn.0", "ffn.1"]);
    for (const s of m.sections) {
      expect(s.offset % SECTION_ALIGNMENT).toBe(0);
      expect(s.offset).toBeGreaterThanOrEqual(HEADER_BYTES + view.getUint32(12, true));
      expect(s.crc32).toBe(crc32(bytes.subarray(s.offset, s.offset + s.length)).toString(16).padStart(8, "0"));
    }
    // Padding between sections is zero.
    const sorted = [...m.sections].sort((a: any, b: any) => a.offset - b.offset);
    sorted.forEach((s: any, k: number) => {
      const next = k + 1 < sorted.length ? sorted[k + 1].offset : bytes.byteLength;
      expect(bytes.subarray(s.offset + s.length, next).every((b) => b === 0)).toBe(true);
    });
    expect(m.provenance).toEqual({ source: "random test model", converter: "test", seed: 1 });
  });

  it(`reads back every tensor (${label(v)})`, async () => {
    const model = makeModel(v);
    const { bytes } = await writeModel(model);
    const file = await openFlm(new MemorySource(bytes));
    expect(file.manifest.config).toEqual(model.decl.config);
    const resident = await file.readResident();
    expect([...resident.keys()]).toEqual(model.decl.tensors.map((t) => t.name));
    for (const [name, want] of model.tensors) {
      const got = resident.get(name)!;
      expect(got.shape).toEqual(model.decl.tensors.find((t) => t.name === name)!.shape);
      // Norms (rank 1) stay f32 in a q8 file; matrices take dtype.resident.
      expect(got.dtype).toBe(got.shape.length >= 2 ? v.dtype : "f32");
      if (got.dtype === "f32") {
        expect(Array.from(got.data)).toEqual(Array.from(want));
        continue;
      }
      if (got.dtype !== "q8") throw new Error(`unexpected dtype ${got.dtype}`);
      const cols = got.shape[got.shape.length - 1];
      for (let r = 0; r < got.scales.length; r++) {
        const ref = refQuantize(want.subarray(r * cols, (r + 1) * cols));
        expect(got.scales[r]).toBe(ref.scale);
        expect(Array.from(got.q.subarray(r * cols, (r + 1) * cols))).toEqual(ref.q);
        for (let c = 0; c < cols; c++) expect(Math.abs(got.scales[r] * got.q[r * cols + c] - want[r * cols + c])).toBeLessThanOrEqual(got.scales[r] / 2 + 1e-9);
      }
    }
    expect(Array.from(await file.readTokenizer())).toEqual(Array.from(model.tokenizer));
  });

  it(`stores every bundle in the kernel's byte layout (${label(v)})`, async () => {
    const model = makeModel(v);
    const { bytes } = await writeModel(model);
    const file = await openFlm(new MemorySource(bytes));
    const { bundle } = file;
    const m = file.manifest;
    expect(m.ffn.bundleBytes).toBe(bundle.bundleBytes);
    expect(m.ffn.bundleStride).toBe(bundle.bundleStride);
    expect(bundle.bundleStride % 16).toBe(0);
    if (v.alignment) expect(bundle.bundleStride % v.alignment).toBe(0);
    await file.loadBundleCrcs();
    const e = v.dtype === "f32" ? 4 : 1;
    const dim = m.config.dim;
    for (let l = 0; l < LAYERS; l++) {
      expect(file.ffnLayerOffset(l)).toBe(m.sections.find((s) => s.name === `ffn.${l}`)!.offset);
      for (let i = 0; i < HIDDEN; i++) {
        const at = file.bundleOffset(l, i);
        expect(at).toBe(file.ffnLayerOffset(l) + i * bundle.bundleStride);
        if (v.alignment === 4096) expect(at % 4096).toBe(0);
        const n = model.neurons[l][i];
        const view = new DataView(bytes.buffer, at, bundle.bundleStride);
        // Header, then [gate] up down at 16 + k·dim·e, as ABI.md says.
        const rows = v.gated ? [n.gate!, n.up, n.down] : [n.up, n.down];
        const scaleFields = v.gated ? [BUNDLE_FIELDS.scaleGate, BUNDLE_FIELDS.scaleUp, BUNDLE_FIELDS.scaleDown] : [BUNDLE_FIELDS.scaleUp, BUNDLE_FIELDS.scaleDown];
        expect(view.getFloat32(BUNDLE_FIELDS.biasUp, true)).toBe(Math.fround(n.biasUp ?? 0));
        if (!v.gated) expect(view.getFloat32(BUNDLE_FIELDS.scaleGate, true)).toBe(0);
        rows.forEach((row, k) => {
          const base = 16 + k * dim * e;
          if (v.dtype === "f32") {
            expect(view.getFloat32(scaleFields[k], true)).toBe(0);
            for (let j = 0; j < dim; j++) expect(view.getFloat32(base + 4 * j, true)).toBe(row[j]);
          } else {
            const ref = refQuantize(row);
            expect(view.getFloat32(scaleFields[k], true)).toBe(ref.scale);
            for (let j = 0; j < dim; j++) expect(view.getInt8(base + j)).toBe(ref.q[j]);
          }
        });
        expect(16 + rows.length * dim * e).toBe(bundle.bundleBytes);
        expect(bytes.subarray(at + bundle.bundleBytes, at + bundle.bundleStride).every((b) => b === 0)).toBe(true);
        // The stored bundle CRC covers bundleBytes, and reading through the file checks it.
        const raw = bytes.subarray(at, at + bundle.bundleBytes);
        expect(file.bundleCrc(l, i)).toBe(crc32(raw));
        file.verifyBundle(l, i, raw);
        expect(Array.from(await file.readBundle(l, i))).toEqual(Array.from(raw));
        // Decoded values equal the input (f32) or are within scale/2 (q8).
        const u = unpackBundle(bundle, bytes, at);
        if (v.dtype === "f32") expect(Array.from(u.down)).toEqual(Array.from(n.down));
        else for (let j = 0; j < dim; j++) expect(Math.abs(u.down[j] - n.down[j])).toBeLessThanOrEqual(u.scaleDown / 2 + 1e-9);
      }
    }
  });

  it(`passes verifyAll (${label(v)})`, async () => {
    const { bytes } = await writeModel(makeModel(v));
    const file = await openFlm(new MemorySource(bytes));
    let progress = 0;
    const report = await file.verifyAll({ chunkBytes: 1000, onProgress: (done) => (progress = done) });
    expect(report.errors).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.sections.map((s) => s.name)).toEqual(file.manifest.sections.map((s) => s.name));
    expect(report.bundlesChecked).toBe(LAYERS * HIDDEN);
    expect(progress).toBe(file.manifest.sections.reduce((n, s) => n + s.length, 0));
  });

  it(`is byte-for-byte reproducible: write → read → write gives identical bytes (${label(v)})`, async () => {
    const model = makeModel(v);
    const { bytes } = await writeModel(model);
    // Same inputs, different chunking and layer order: same bytes.
    expect((await writeModel(model, undefined, 1)).bytes).toEqual(bytes);
    const file = await openFlm(new MemorySource(bytes));
    const again = await rewrite(model, file, await file.readResident());
    expect(again).toEqual(bytes);
    if (v.dtype === "f32") {
      // Through decoded floats as well (f32 is lossless).
      const sink = new RecordingSink();
      const writer = new FlmWriter(sink, model.decl);
      const resident = await file.readResident();
      for (const t of model.decl.tensors) {
        const r = resident.get(t.name)!;
        await writer.writeTensor(t.name, r.dtype === "f32" ? r.data : new Float32Array(0));
      }
      if (model.tokenizer.byteLength > 0) await writer.writeTokenizer(await file.readTokenizer());
      for (let l = 0; l < LAYERS; l++) {
        await writer.writeLayer(l, async (i) => {
          const u = unpackBundle(file.bundle, await file.readBundle(l, i));
          return { ...(u.gate ? { gate: u.gate } : {}), up: u.up, down: u.down, biasUp: u.biasUp };
        });
      }
      await writer.finish();
      expect(sink.bytes()).toEqual(bytes);
    }
  });
});

describe("round trip extras", () => {
  it("re-strides a file to 4096-byte bundles from its packed bundles without changing them", async () => {
    const model = makeModel({ gated: true, dtype: "q8" });
    const { bytes } = await writeModel(model);
    const file = await openFlm(new MemorySource(bytes));
    const wide = await rewrite(model, file, await file.readResident(), 4096);
    const file2 = await openFlm(new MemorySource(wide));
    expect(file2.bundle.bundleStride).toBe(4096);
    expect((await file2.verifyAll()).ok).toBe(true);
    for (let l = 0; l < LAYERS; l++) for (let i = 0; i < HIDDEN; i++) expect(await file2.readBundle(l, i)).toEqual(await file.readBundle(l, i));
    expect(await file2.readSection("resident")).toEqual(await file.readSection("resident"));
    expect(await file2.loadBundleCrcs()).toEqual(await file.loadBundleCrcs());
  });

  it("opens a file whose manifest is larger than the first 64 KiB read", async () => {
    const model = makeModel({ gated: true, dtype: "f32" });
    model.decl.provenance = { note: "x".repeat(100_000), date: "2024-01-01" };
    const { bytes } = await writeModel(model);
    const reads: number[] = [];
    const source = new MemorySource(bytes);
    const counting = { byteLength: source.byteLength, read: (r: any, s?: AbortSignal) => (reads.push(r.length), source.read(r, s)), close: () => source.close() };
    const file = await openFlm(counting);
    expect(reads.length).toBe(2);
    expect(file.header.manifestLength).toBeGreaterThan(100_000);
    expect(file.manifest.sections[0].offset).toBe(Math.ceil((16 + file.header.manifestLength) / 4096) * 4096);
    expect((file.manifest.provenance as any).note.length).toBe(100_000);
    expect((await file.verifyAll()).ok).toBe(true);
  });

  it("opens a small file with a single read", async () => {
    const { bytes } = await writeModel(makeModel({ gated: false, dtype: "q8" }));
    const source = new MemorySource(bytes);
    let reads = 0;
    await openFlm({ byteLength: source.byteLength, read: (r, s) => (reads++, source.read(r, s)), close: () => source.close() });
    expect(reads).toBe(1);
  });

  it("reads a section into a caller's buffer (e.g. WASM memory)", async () => {
    const { bytes } = await writeModel(makeModel({ gated: true, dtype: "f32" }));
    const file = await openFlm(new MemorySource(bytes));
    const s = file.section("resident");
    const target = new Uint8Array(s.length + 32);
    const got = await file.readSection("resident", { target });
    expect(got.buffer).toBe(target.buffer);
    expect(got).toEqual(bytes.subarray(s.offset, s.offset + s.length));
  });
});
