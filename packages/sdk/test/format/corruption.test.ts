import { describe, expect, it } from "vitest";
import { FormatError } from "../../src/errors.js";
import { MemorySource } from "../../src/source.js";
import { openFlm } from "../../src/format/index.js";
import { errorOf, makeModel, manifestJson, withManifest, withManifestText, writeModel } from "./helpers.js";

const { bytes: good } = await writeModel(makeModel({ gated: true, dtype: "q8", alignment: 64 }));
const open = (b: Uint8Array) => openFlm(new MemorySource(b));
const openError = async (b: Uint8Array) => {
  const e = await errorOf(() => open(b));
  expect(e).toBeInstanceOf(FormatError);
  return e;
};
const section = (name: string) => manifestJson(good).sections.find((s: any) => s.name === name);

describe("header corruption", () => {
  it("rejects a flipped magic byte", async () => {
    const b = good.slice();
    b[3] ^= 0x20;
    const e = await openError(b);
    expect(e.code).toBe("BAD_MAGIC");
    expect(e.details).toMatchObject({ expected: "FLASHLLM", actual: "FLAsHLLM" });
  });

  it("rejects version 3 in the header", async () => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(8, 3, true);
    const e = await openError(b);
    expect(e.code).toBe("BAD_VERSION");
    expect(e.details).toMatchObject({ expected: "1 or 2", actual: 3 });
  });

  it("rejects a header version that disagrees with the manifest's", async () => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(8, 2, true); // a known version, but the manifest says 1
    const e = await openError(b);
    expect(e.code).toBe("BAD_VERSION");
    expect(e.details).toMatchObject({ field: "version", expected: 2, actual: 1 });
  });

  it("rejects a file shorter than the header", async () => {
    expect((await openError(good.slice(0, 10))).code).toBe("TRUNCATED");
    expect((await openError(new Uint8Array(0))).code).toBe("TRUNCATED");
  });

  it("rejects a manifest length beyond the end of the file", async () => {
    const b = good.slice(0, 4096);
    new DataView(b.buffer).setUint32(12, 5000, true);
    const e = await openError(b);
    expect(e.code).toBe("TRUNCATED");
    expect(e.details).toMatchObject({ field: "manifestLength", actual: 5000 });
  });

  it("rejects an empty or oversized manifest length", async () => {
    for (const len of [0, 16 * 1024 * 1024 + 1, 0xffffffff]) {
      const b = good.slice();
      new DataView(b.buffer).setUint32(12, len, true);
      const e = await openError(b);
      expect(e.code).toBe("BAD_HEADER");
      expect(e.details.field).toBe("manifestLength");
    }
  });
});

describe("manifest corruption", () => {
  it("rejects a manifest that is not JSON", async () => {
    const e = await openError(withManifestText(good, "{ this is not json"));
    expect(e.code).toBe("BAD_MANIFEST");
    expect(e.message).toMatch(/not valid JSON/);
  });

  it("rejects a manifest that is not UTF-8", async () => {
    expect((await openError(withManifestText(good, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])))).code).toBe("BAD_MANIFEST");
  });

  it("rejects a JSON manifest that is not an object, or not a flashllm manifest", async () => {
    expect((await openError(withManifestText(good, "[1,2]"))).details.field).toBe("manifest");
    expect((await openError(withManifest(good, (m) => (m.format = "gguf")))).details.field).toBe("format");
  });

  it("rejects manifest version 2 in a version-1 header, and an unknown manifest version", async () => {
    expect((await openError(withManifest(good, (m) => (m.version = 3)))).code).toBe("BAD_VERSION");
    const e = await openError(withManifest(good, (m) => (m.version = 2)));
    expect(e.code).toBe("BAD_VERSION");
    expect(e.details.field).toBe("version");
  });

  it("rejects a section beyond the end of the file, naming it", async () => {
    const e = await openError(withManifest(good, (m) => (m.sections[4].offset += 1 << 20)));
    expect(e.code).toBe("TRUNCATED");
    expect(e.details.section).toBe("ffn.1");
  });

  it("rejects a truncated file, naming the section that no longer fits", async () => {
    const s = section("ffn.1");
    const e = await openError(good.slice(0, s.offset + 100));
    expect(e.code).toBe("TRUNCATED");
    expect(e.details).toMatchObject({ section: "ffn.1", expected: `end <= ${s.offset + 100}`, actual: s.offset + s.length });
    expect(e.message).toMatch(/ffn\.1/);
  });

  it("rejects overlapping sections", async () => {
    const e = await openError(withManifest(good, (m) => (m.sections[4].offset = m.sections[3].offset)));
    expect(e.code).toBe("BAD_MANIFEST");
    expect(e.details.sections).toEqual(["ffn.0", "ffn.1"]);
  });

  it("rejects a section inside the header/manifest area or off the 4096 grid", async () => {
    expect((await openError(withManifest(good, (m) => (m.sections[0].offset = 0)))).details.field).toBe("sections[0].offset");
    expect((await openError(withManifest(good, (m) => (m.sections[1].offset += 16)))).details.field).toBe("sections[1].offset");
  });

  it("rejects non-integer, negative, unsafe and non-numeric offsets, naming the field", async () => {
    for (const bad of [4096.5, -4096, 2 ** 53, 2 ** 60, "8192", null]) {
      const e = await openError(withManifest(good, (m) => (m.sections[2].offset = bad)));
      expect(e.code).toBe("BAD_MANIFEST");
      expect(e.details.field).toBe("sections[2].offset");
    }
    for (const bad of [1.5, -16, 2 ** 53]) {
      const e = await openError(withManifest(good, (m) => (m.tensors[1].offset = bad)));
      expect(e.code).toBe("BAD_MANIFEST");
      expect(e.details.field).toBe("tensors[1].offset");
    }
    const e = await openError(withManifest(good, (m) => (m.sections[3].length = 2 ** 53 - 1)));
    expect(e.details.field).toBe("sections[3].length");
  });

  it("rejects absurd or inconsistent dimensions with WRONG_DIMS", async () => {
    const cases: [string, unknown][] = [
      ["dim", 1_000_000],
      ["dim", 0],
      ["hiddenDim", 2 ** 21],
      ["nLayers", 5000],
      ["nLayers", -1],
      ["vocabSize", 2 ** 23],
      ["seqLen", 2 ** 21],
      ["nHeads", 5], // does not divide dim 16
      ["nKvHeads", 3], // does not divide nHeads 4
    ];
    for (const [field, value] of cases) {
      const e = await openError(withManifest(good, (m) => (m.config[field] = value)));
      expect(e.code, `${field}=${value}`).toBe("WRONG_DIMS");
      expect(e.details.field).toBe(`config.${field}`);
    }
    expect((await openError(withManifest(good, (m) => (m.config.dim = "16")))).code).toBe("BAD_MANIFEST");
    expect((await openError(withManifest(good, (m) => (m.config.normEps = -1)))).details.field).toBe("config.normEps");
  });

  it("rejects unknown enum values as UNSUPPORTED and wrong types as BAD_MANIFEST", async () => {
    let e = await openError(withManifest(good, (m) => (m.architecture = "mamba")));
    expect([e.code, e.details.field]).toEqual(["UNSUPPORTED", "architecture"]);
    e = await openError(withManifest(good, (m) => (m.dtype.ffn = "q2_k")));
    expect([e.code, e.details.field]).toEqual(["UNSUPPORTED", "dtype.ffn"]);
    e = await openError(withManifest(good, (m) => (m.config.gated = "yes")));
    expect([e.code, e.details.field]).toEqual(["BAD_MANIFEST", "config.gated"]);
  });

  it("rejects tensors that do not fit their section or their shape", async () => {
    const resident = section("resident");
    let e = await openError(withManifest(good, (m) => (m.tensors[2].offset = resident.length)));
    expect([e.code, e.details.field, e.details.tensor]).toEqual(["OUT_OF_BOUNDS", "tensors[2].offset", manifestJson(good).tensors[2].name]);
    e = await openError(withManifest(good, (m) => (m.tensors[0].length += 1)));
    expect([e.code, e.details.field]).toEqual(["SIZE_MISMATCH", "tensors[0].length"]);
    e = await openError(withManifest(good, (m) => (m.tensors[0].shape = [33, 16])));
    expect(e.code).toBe("SIZE_MISMATCH");
    e = await openError(withManifest(good, (m) => (m.tensors[1].offset = m.tensors[0].offset)));
    expect(e.code).toBe("BAD_MANIFEST");
    expect(e.details.field).toBe("tensors");
    e = await openError(withManifest(good, (m) => delete m.tensors[0].scaleOffset));
    expect([e.code, e.details.field]).toEqual(["BAD_MANIFEST", "tensors[0].scaleOffset"]);
    e = await openError(withManifest(good, (m) => (m.tensors[0].offset += 4)));
    expect([e.code, e.details.field]).toEqual(["BAD_MANIFEST", "tensors[0].offset"]);
    e = await openError(withManifest(good, (m) => (m.tensors[1].name = m.tensors[0].name)));
    expect(e.details.field).toBe("tensors[1].name");
  });

  it("rejects FFN metadata that disagrees with the config and sections", async () => {
    let e = await openError(withManifest(good, (m) => (m.ffn.bundleBytes += 4)));
    expect([e.code, e.details.field]).toEqual(["SIZE_MISMATCH", "ffn.bundleBytes"]);
    e = await openError(withManifest(good, (m) => (m.ffn.bundleStride = m.ffn.bundleBytes + 1)));
    expect([e.code, e.details.field]).toEqual(["BAD_MANIFEST", "ffn.bundleStride"]);
    e = await openError(withManifest(good, (m) => (m.ffn.gated = false)));
    expect(e.details.field).toBe("ffn.gated");
    e = await openError(withManifest(good, (m) => m.ffn.layers.pop()));
    expect(e.details.field).toBe("ffn.layers");
    e = await openError(withManifest(good, (m) => (m.ffn.layers[1].section = "ffn.9")));
    expect([e.code, e.details.field]).toEqual(["BAD_MANIFEST", "ffn.layers[1].section"]);
    e = await openError(withManifest(good, (m) => (m.ffn.layers[1].section = "ffn.0")));
    expect(e.code).toBe("BAD_MANIFEST");
    e = await openError(withManifest(good, (m) => (m.sections[3].length -= 64)));
    expect([e.code, e.details.section]).toEqual(["SIZE_MISMATCH", "ffn.0"]);
    e = await openError(withManifest(good, (m) => (m.sections[2].length -= 4)));
    expect([e.code, e.details.section]).toEqual(["SIZE_MISMATCH", "ffn.crc"]);
    e = await openError(withManifest(good, (m) => (m.sections = m.sections.filter((s: any) => s.name !== "resident"))));
    expect(e.code).toBe("BAD_MANIFEST");
    e = await openError(withManifest(good, (m) => (m.sections[0].crc32 = "CBF43926")));
    expect(e.details.field).toBe("sections[0].crc32");
    e = await openError(withManifest(good, (m) => (m.sections[1].name = "resident")));
    expect(e.details.field).toBe("sections[1].name");
  });

  it("accepts unknown extra sections (extensions) and still verifies them", async () => {
    const ext = (offset: number) => withManifest(good, (m) => m.sections.push({ name: "predictor.0", offset, length: 0, crc32: "00000000" }));
    // Even an empty section must lie inside the file.
    expect((await openError(ext(good.byteLength + 4096))).code).toBe("TRUNCATED");
    const ok = ext(good.byteLength);
    const file = await open(ok);
    expect(file.hasSection("predictor.0")).toBe(true);
    expect((await file.verifyAll()).ok).toBe(true);
  });
});

describe("section checksums", () => {
  for (const name of ["resident", "tokenizer", "ffn.crc", "ffn.0", "ffn.1"]) {
    it(`reports a flipped byte in "${name}" as CHECKSUM_MISMATCH naming the section`, async () => {
      const s = section(name);
      const b = good.slice();
      b[s.offset + Math.floor(s.length / 2)] ^= 0x01;
      const file = await open(b); // opening reads no section
      const e = await errorOf(() => file.readSection(name));
      expect(e.code).toBe("CHECKSUM_MISMATCH");
      expect(e.details).toMatchObject({ section: name, expected: s.crc32 });
      expect(e.message).toContain(`"${name}"`);
      expect(await file.readSection(name, { verify: false })).toEqual(b.subarray(s.offset, s.offset + s.length));
      const report = await file.verifyAll();
      expect(report.ok).toBe(false);
      expect(report.sections.filter((c) => !c.ok).map((c) => c.name)).toEqual([name]);
      expect(report.errors[report.errors.length - 1].details.section).toBe(name);
    });
  }

  it("pins a corrupt bundle to its layer and neuron", async () => {
    const file0 = await open(good);
    const at = file0.bundleOffset(1, 7);
    const b = good.slice();
    b[at + 20] ^= 0x80;
    const file = await open(b);
    let e = await errorOf(() => file.readBundle(1, 7));
    expect(e.code).toBe("CHECKSUM_MISMATCH");
    expect(e.details).toMatchObject({ section: "ffn.1", layer: 1, neuron: 7 });
    await file.readBundle(1, 6); // neighbours are fine
    e = await errorOf(() => file.verifyBundle(1, 7, b.subarray(at, at + file.bundle.bundleBytes)));
    expect(e.details.neuron).toBe(7);
    const report = await file.verifyAll();
    expect(report.badBundles).toEqual([{ layer: 1, neuron: 7 }]);
    expect(report.sections.find((c) => !c.ok)!.name).toBe("ffn.1");
  });

  it("does not trust bundle CRCs from a corrupt ffn.crc", async () => {
    const s = section("ffn.crc");
    const b = good.slice();
    b[s.offset] ^= 0xff;
    const file = await open(b);
    expect((await errorOf(() => file.loadBundleCrcs())).details.section).toBe("ffn.crc");
    expect((await errorOf(() => file.readBundle(0, 0))).details.section).toBe("ffn.crc");
    const report = await file.verifyAll();
    expect(report.bundlesChecked).toBe(0);
    expect(report.sections.filter((c) => !c.ok).map((c) => c.name)).toEqual(["ffn.crc"]);
  });

  it("asks for loadBundleCrcs before bundleCrc, and checks indices", async () => {
    const file = await open(good);
    expect((await errorOf(() => file.bundleCrc(0, 0))).code).toBe("BAD_ARGUMENT");
    await file.loadBundleCrcs();
    expect(typeof file.bundleCrc(1, 39)).toBe("number");
    for (const [l, i] of [[2, 0], [0, 40], [-1, 0], [0, 1.5]]) expect((await errorOf(() => file.bundleOffset(l, i))).code).toBe("BAD_ARGUMENT");
    expect((await errorOf(() => file.readSection("nope"))).code).toBe("BAD_ARGUMENT");
  });
});
