// Mutation recipes: a case is a seed name plus a list of JSON-serialisable operations, so every case
// the fuzzer generates can be printed, replayed, and kept in corpus/ as a regression test.
import { crc32, crcToHex } from "@flashllm/sdk/internal";
import type { Rng } from "./harness.js";

/** A path into a JSON document: keys and array indices. */
export type JsonPath = (string | number)[];

/** One mutation. Byte offsets are absolute unless said otherwise. */
export type Op =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; hex: string }
  | { op: "u32"; at: number; value: number }
  | { op: "truncate"; length: number }
  | { op: "extend"; bytes: number; fill?: number }
  /** JSON document (`.flm` manifest, safetensors header): set the value at `path`. */
  | { op: "jset"; path: JsonPath; value: unknown }
  /** JSON document: set `path` to arrays nested `depth` deep (too big to store literally). */
  | { op: "jdeep"; path: JsonPath; depth: number }
  | { op: "jdel"; path: JsonPath }
  | { op: "jswap"; a: JsonPath; b: JsonPath }
  /** JSON document: overwrite bytes of its serialised text at offset `at` of the text. */
  | { op: "jtext"; at: number; hex: string }
  /** `.flm`: flip a bit at offset `at` of section `section`'s content. */
  | { op: "sflip"; section: string; at: number; bit: number }
  /** `.flm`: recompute the ffn.crc table from the FFN sections as they are now. */
  | { op: "fixbundlecrc" }
  /** `.flm`: recompute every section's crc32 in the manifest from the content as it is now. */
  | { op: "fixcrc" };

/** What a case runs on. */
export type Target = "flm" | "llama2c" | "tokenizer" | "safetensors" | "hftokenizer" | "gguf";

/** A fuzz case: replayable from its seed and ops. */
export interface Case {
  target: Target;
  /** Seed file: a `.flm` seed name, a llama2.c model name, or a safetensors model name. */
  seed: string;
  ops: Op[];
  /** Options the case runs with (strategy, verifyReads…), drawn by the fuzzer. */
  run?: { strategy?: "naive" | "bundled" | "windowed"; verifyReads?: boolean; contextLength?: number; temperature?: number; tokens?: number };
}

// ---------------------------------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------------------------------

const enc = new TextEncoder();
const dec = new TextDecoder();

function hexBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function getAt(doc: any, path: JsonPath): any {
  let v = doc;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = v[k];
  }
  return v;
}

function setAt(doc: any, path: JsonPath, value: unknown): any {
  if (path.length === 0) return value;
  const parent = getAt(doc, path.slice(0, -1));
  if (parent !== null && typeof parent === "object") parent[path[path.length - 1]] = value;
  return doc;
}

function delAt(doc: any, path: JsonPath): void {
  const parent = getAt(doc, path.slice(0, -1));
  if (parent === null || typeof parent !== "object") return;
  const k = path[path.length - 1];
  if (Array.isArray(parent) && typeof k === "number") parent.splice(k, 1);
  else delete parent[k];
}

function nested(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

/**
 * A JSON document inside a file: how to read its text, and how to write a document back (rendered by
 * `render`), re-laying out the file when its length changes.
 */
interface JsonDoc {
  read(bytes: Uint8Array): string;
  write(bytes: Uint8Array, doc: any, render: (doc: any) => string): Uint8Array;
}

/** `.flm` manifest at byte 16. A longer manifest moves every section by whole pages (offsets follow). */
function flmDoc(dataStart: { at: number }): JsonDoc {
  return {
    read(bytes) {
      const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
      return dec.decode(bytes.subarray(16, Math.min(bytes.byteLength, 16 + len)));
    },
    write(bytes, doc, render) {
      const sections: any[] = doc && Array.isArray(doc.sections) ? doc.sections : [];
      const original = sections.map((s) => (s && typeof s.offset === "number" ? s.offset : undefined));
      let t = enc.encode(render(doc));
      let delta = 0;
      while (16 + t.byteLength > dataStart.at + delta) {
        delta = Math.ceil((16 + t.byteLength - dataStart.at) / 4096) * 4096;
        sections.forEach((s, i) => {
          if (original[i] !== undefined) s.offset = original[i] + delta;
        });
        t = enc.encode(render(doc));
      }
      const out = new Uint8Array(bytes.byteLength + delta);
      out.set(bytes.subarray(0, 16));
      out.set(t, 16);
      out.set(bytes.subarray(dataStart.at), dataStart.at + delta);
      new DataView(out.buffer).setUint32(12, t.byteLength, true);
      dataStart.at += delta;
      return out;
    },
  };
}

/** safetensors header: u64 length, JSON, data. Any new length works: offsets are relative to the data. */
function safetensorsDoc(dataStart: { at: number }): JsonDoc {
  return {
    read(bytes) {
      const v = new DataView(bytes.buffer, bytes.byteOffset);
      const len = v.getUint32(0, true) + v.getUint32(4, true) * 2 ** 32;
      return dec.decode(bytes.subarray(8, Math.min(bytes.byteLength, 8 + len)));
    },
    write(bytes, doc, render) {
      const t = enc.encode(render(doc));
      const out = new Uint8Array(8 + t.byteLength + Math.max(0, bytes.byteLength - dataStart.at));
      new DataView(out.buffer).setUint32(0, t.byteLength, true);
      out.set(t, 8);
      out.set(bytes.subarray(dataStart.at), 8 + t.byteLength);
      dataStart.at = 8 + t.byteLength;
      return out;
    },
  };
}

/** A stored Hugging Face tokenizer (`{ tokenizer, config }`): the whole file is the JSON document. */
function wholeJsonDoc(): JsonDoc {
  return {
    read: (bytes) => dec.decode(bytes),
    write: (_bytes, doc, render) => enc.encode(render(doc)),
  };
}

function flmSections(bytes: Uint8Array): any[] | undefined {
  try {
    const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
    const m = JSON.parse(dec.decode(bytes.subarray(16, 16 + len)));
    return Array.isArray(m.sections) ? m.sections : undefined;
  } catch {
    return undefined;
  }
}

/** Applies `ops` to a copy of `seed` (a file of kind `target`). Ops that no longer make sense are no-ops. */
export function applyOps(target: Target, seed: Uint8Array, ops: readonly Op[]): Uint8Array {
  let bytes: Uint8Array = seed.slice();
  const dataStart = { at: 0 };
  if (target === "flm") {
    const s = flmSections(bytes) ?? [];
    dataStart.at = Math.min(...s.map((x) => x.offset));
  } else if (target === "safetensors") {
    const v = new DataView(bytes.buffer);
    dataStart.at = 8 + v.getUint32(0, true);
  }
  const doc = target === "flm" ? flmDoc(dataStart) : target === "safetensors" ? safetensorsDoc(dataStart) : target === "hftokenizer" ? wholeJsonDoc() : undefined;
  const editJson = (f: (d: any) => any, render: (d: any) => string = (d) => JSON.stringify(d)): void => {
    if (!doc) return;
    let d: any;
    try {
      d = JSON.parse(doc.read(bytes));
    } catch {
      return;
    }
    try {
      bytes = doc.write(bytes, f(d), render);
    } catch (e) {
      // A document nested too deeply to serialise again (an earlier jdeep): leave it as it is.
      if (!(e instanceof RangeError)) throw e;
    }
  };
  for (const o of ops) {
    switch (o.op) {
      case "flip":
        if (o.at < bytes.byteLength) bytes[o.at] ^= 1 << o.bit;
        break;
      case "set": {
        const h = hexBytes(o.hex);
        for (let i = 0; i < h.length && o.at + i < bytes.byteLength; i++) bytes[o.at + i] = h[i];
        break;
      }
      case "u32":
        if (o.at + 4 <= bytes.byteLength) new DataView(bytes.buffer).setUint32(o.at, o.value >>> 0, true);
        break;
      case "truncate":
        bytes = bytes.slice(0, Math.min(o.length, bytes.byteLength));
        break;
      case "extend": {
        const out = new Uint8Array(bytes.byteLength + o.bytes).fill(o.fill ?? 0);
        out.set(bytes);
        bytes = out;
        break;
      }
      case "jset":
        editJson((d) => setAt(d, o.path, o.value));
        break;
      case "jdel":
        editJson((d) => (delAt(d, o.path), d));
        break;
      case "jswap":
        editJson((d) => {
          const a = getAt(d, o.a);
          const b = getAt(d, o.b);
          setAt(d, o.a, b);
          setAt(d, o.b, a);
          return d;
        });
        break;
      case "jdeep": {
        const marker = "\u0000DEEP\u0000";
        editJson((d) => setAt(d, o.path, marker), (d) => JSON.stringify(d).replace(JSON.stringify(marker), nested(o.depth)));
        break;
      }
      case "jtext": {
        if (!doc) break;
        const t = enc.encode(doc.read(bytes));
        const h = hexBytes(o.hex);
        const base = target === "flm" ? 16 : target === "hftokenizer" ? 0 : 8;
        for (let i = 0; i < h.length && o.at + i < t.byteLength; i++) bytes[base + o.at + i] = h[i];
        break;
      }
      case "sflip": {
        const s = flmSections(bytes)?.find((x) => x.name === o.section);
        if (s && typeof s.offset === "number" && typeof s.length === "number" && s.length > 0) {
          const at = s.offset + (o.at % s.length);
          if (at < bytes.byteLength) bytes[at] ^= 1 << o.bit;
        }
        break;
      }
      case "fixbundlecrc":
        bytes = fixBundleCrcs(bytes);
        break;
      case "fixcrc":
        editJson((d) => {
          if (!Array.isArray(d.sections)) return d;
          for (const s of d.sections) {
            if (!s || !Number.isSafeInteger(s.offset) || !Number.isSafeInteger(s.length) || s.offset < 0 || s.length < 0) continue;
            if (s.offset + s.length > bytes.byteLength) continue;
            s.crc32 = crcToHex(crc32(bytes.subarray(s.offset, s.offset + s.length)));
          }
          return d;
        });
        break;
    }
  }
  return bytes;
}

/** Recomputes the ffn.crc table of a (mutated) `.flm` from its FFN sections, where the manifest still allows. */
function fixBundleCrcs(bytes: Uint8Array): Uint8Array {
  let m: any;
  try {
    const len = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
    m = JSON.parse(dec.decode(bytes.subarray(16, 16 + len)));
  } catch {
    return bytes;
  }
  const byName = new Map<string, any>((m.sections ?? []).map((s: any) => [s?.name, s]));
  const crc = byName.get(m.ffn?.crcSection);
  const bb = m.ffn?.bundleBytes;
  const stride = m.ffn?.bundleStride;
  const hidden = m.config?.hiddenDim;
  if (!crc || !Array.isArray(m.ffn?.layers) || !(bb > 0) || !(stride >= bb) || !(hidden > 0)) return bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  m.ffn.layers.forEach((l: any, layer: number) => {
    const s = byName.get(l?.section);
    if (!s) return;
    for (let i = 0; i < hidden; i++) {
      const at = s.offset + i * stride;
      const slot = crc.offset + 4 * (layer * hidden + i);
      if (at + bb > bytes.byteLength || slot + 4 > crc.offset + crc.length || slot + 4 > bytes.byteLength) return;
      view.setUint32(slot, crc32(bytes.subarray(at, at + bb)), true);
    }
  });
  return bytes;
}

// ---------------------------------------------------------------------------------------------------
// Generating
// ---------------------------------------------------------------------------------------------------

/** Integer values at and around the limits a reader must survive. */
const BOUNDARY_INTS = [0, 1, -1, 2, 3, 15, 16, 17, 255, 4095, 4096, 4097, 65535, 65536, 65537, 2 ** 20, 2 ** 20 + 1, 2 ** 22, 2 ** 30, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, -(2 ** 31), -(2 ** 53)];
/** Values of other kinds. */
const ODD_VALUES: unknown[] = [null, true, false, "", "0", "16", "x".repeat(300), [], [1], {}, { a: 1 }, 0.5, -0, 1e308, -1e308, 1e-320, "f16", "q4", "none", "llama", "opt"];

function boundaryValue(r: Rng, current: unknown): unknown {
  if (typeof current === "number" && r.chance(0.5)) {
    const c = current;
    return r.pick([c + 1, c - 1, c * 2, Math.floor(c / 2), c + 4096, c - 4096, c * 4096, -c, c + 0.5, c + 16, c - 16]);
  }
  return r.chance(0.6) ? r.pick(BOUNDARY_INTS) : r.pick(ODD_VALUES);
}

/** Every path to a leaf (and to every object/array) of a JSON document. */
function paths(doc: unknown, prefix: JsonPath = [], out: { leaves: JsonPath[]; nodes: JsonPath[] } = { leaves: [], nodes: [] }) {
  if (doc !== null && typeof doc === "object") {
    out.nodes.push(prefix);
    if (Array.isArray(doc)) doc.forEach((v, i) => paths(v, [...prefix, i], out));
    else for (const [k, v] of Object.entries(doc)) paths(v, [...prefix, k], out);
  } else out.leaves.push(prefix);
  return out;
}

/** Random JSON-level ops on a document (manifest or safetensors header). */
export function jsonOps(r: Rng, doc: any, textLength: number): Op[] {
  const { leaves, nodes } = paths(doc);
  const k = r.int(10);
  if (k < 4) {
    const p = r.pick(leaves);
    return [{ op: "jset", path: p, value: boundaryValue(r, getAt(doc, p)) }];
  }
  if (k < 5) return [{ op: "jdel", path: r.pick([...leaves, ...nodes.filter((n) => n.length > 0)]) }];
  if (k < 6) {
    const a = r.pick(leaves);
    const b = r.pick(leaves);
    return [{ op: "jswap", a, b }];
  }
  if (k < 7) {
    // Duplicate or replace an array element (a second section/tensor with the same name, …).
    const arrays = nodes.filter((n) => Array.isArray(getAt(doc, n)) && getAt(doc, n).length > 0);
    if (arrays.length === 0) return [];
    const a = r.pick(arrays);
    const list = getAt(doc, a) as unknown[];
    return [{ op: "jset", path: [...a, r.chance(0.5) ? list.length : r.int(list.length)], value: structuredClone(list[r.int(list.length)]) }];
  }
  if (k < 8) return [{ op: "jdeep", path: [...r.pick(nodes), r.pick(["provenance", "x", "shape", "data_offsets", "__metadata__", "calibration"])], depth: r.pick([10, 1000, 100_000]) }];
  // Raw text damage: the JSON may no longer parse, or parse into something else.
  const n = 1 + r.int(4);
  let hex = "";
  for (let i = 0; i < n; i++) hex += r.pick(["7b", "7d", "5b", "5d", "22", "2c", "3a", "30", "39", "2d", "2e", "65", "00", "ff", "c3", "20", "5c"]);
  return [{ op: "jtext", at: r.int(Math.max(1, textLength)), hex }];
}

/** Random ops for a `.flm` seed. */
export function flmOps(r: Rng, bytes: Uint8Array): Op[] {
  const m = JSON.parse(dec.decode(bytes.subarray(16, 16 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true))));
  const textLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
  const k = r.int(100);
  if (k < 10) {
    // Fixed header.
    if (r.chance(0.5)) return [{ op: "flip", at: r.int(16), bit: r.int(8) }];
    return [{ op: "u32", at: r.pick([8, 12]), value: r.pick([0, 1, 2, textLength - 1, textLength + 1, 4080, 4096, 16 * 2 ** 20, 16 * 2 ** 20 + 1, 2 ** 31, 2 ** 32 - 1]) }];
  }
  if (k < 40) return jsonOps(r, m, textLength);
  if (k < 50) {
    // The section table: offsets, lengths, names and CRCs at and around what makes them valid.
    const i = r.int(m.sections.length);
    const s = m.sections[i];
    const j = r.int(7);
    if (j === 0) return [{ op: "jset", path: ["sections", i, "offset"], value: r.pick([s.offset + 4096, s.offset - 4096, s.offset + 1, 0, 4096, m.sections[r.int(m.sections.length)].offset, 2 ** 32, 2 ** 53 - 4096]) }];
    if (j === 1) return [{ op: "jset", path: ["sections", i, "length"], value: r.pick([s.length + 1, s.length - 1, 0, s.length * 2, 2 ** 32 + s.length, 2 ** 53 - 1 - s.offset]) }, ...(r.chance(0.5) ? [{ op: "fixcrc" } as Op] : [])];
    if (j === 2) return [{ op: "jswap", a: ["sections", i, "offset"], b: ["sections", r.int(m.sections.length), "offset"] }, ...(r.chance(0.5) ? [{ op: "fixcrc" } as Op] : [])];
    if (j === 3) return [{ op: "jswap", a: ["sections", i, "name"], b: ["sections", r.int(m.sections.length), "name"] }, ...(r.chance(0.5) ? [{ op: "fixcrc" } as Op] : [])];
    if (j === 4) return [{ op: "jset", path: ["sections", i, "crc32"], value: r.pick(["00000000", "FFFFFFFF", s.crc32.slice(1), s.crc32 + "0", 0, null]) }];
    if (j === 5) return [{ op: "jdel", path: ["sections", i] }];
    return [{ op: "jset", path: ["sections", m.sections.length], value: { ...s, name: r.chance(0.5) ? s.name : "extra", offset: s.offset + r.pick([0, 4096]) } }];
  }
  if (k < 65) {
    // Mutations that keep the manifest valid but make the model disagree with itself.
    const names = m.tensors.map((t: any) => t.name);
    const j = r.int(6);
    if (j === 0) {
      const a = r.int(names.length);
      const b = r.int(names.length);
      return [{ op: "jswap", a: ["tensors", a, "name"], b: ["tensors", b, "name"] }];
    }
    if (j === 1) {
      const divisors = [1, 2, 4, 8, 16, 32, 64].filter((d) => m.config.dim % d === 0);
      const h = r.pick(divisors);
      return [{ op: "jset", path: ["config", "nHeads"], value: h }, { op: "jset", path: ["config", "nKvHeads"], value: r.pick(divisors.filter((d) => h % d === 0)) }];
    }
    if (j === 2) return [{ op: "jset", path: ["config", "seqLen"], value: r.pick([1, 2, 3, 7, 100, 4096, 2 ** 20]) }];
    if (j === 3) {
      const t = r.int(names.length);
      const shape = m.tensors[t].shape as number[];
      return [{ op: "jset", path: ["tensors", t, "shape"], value: [...shape].reverse() }];
    }
    if (j === 4) return [{ op: "jset", path: ["config", r.pick(["sharedClassifier", "gated"])], value: r.chance(0.5) }];
    return [{ op: "jset", path: ["config", r.pick(["activation", "ropeStyle", "norm"])], value: r.pick(["relu", "gelu", "silu", "neox", "interleaved", "none", "layernorm", "rmsnorm"]) }];
  }
  if (k < 92) {
    // Content damage, with the checksums fixed up half the time so the engine sees it.
    const sections: string[] = m.sections.map((s: any) => s.name);
    const section = r.pick(sections);
    const ops: Op[] = [];
    for (let i = 0, n = 1 + r.int(8); i < n; i++) ops.push({ op: "sflip", section, at: r.int(2 ** 30), bit: r.int(8) });
    if (section.startsWith("ffn.") && section !== "ffn.crc" && r.chance(0.5)) ops.push({ op: "fixbundlecrc" });
    if (r.chance(0.6)) ops.push({ op: "fixcrc" });
    return ops;
  }
  if (r.chance(0.7)) return [{ op: "truncate", length: r.int(bytes.byteLength) }];
  return [{ op: "extend", bytes: 1 + r.int(8192), fill: r.pick([0, 0xff]) }];
}

/** Random ops for a llama2.c checkpoint. */
export function llama2cOps(r: Rng, bytes: Uint8Array): Op[] {
  const k = r.int(10);
  if (k < 5) {
    const field = r.int(7);
    const cur = new DataView(bytes.buffer, bytes.byteOffset).getInt32(field * 4, true);
    const v = r.chance(0.5) ? r.pick([0, 1, -1, 2, 3, cur + 1, cur - 1, cur * 2, -cur, 2 ** 16, 2 ** 20, 2 ** 22, 2 ** 31 - 1, -(2 ** 31), 1024, 1025]) : r.int(2 ** 32);
    return [{ op: "u32", at: field * 4, value: v }];
  }
  if (k < 8) {
    const ops: Op[] = [];
    for (let i = 0, n = 1 + r.int(16); i < n; i++) ops.push({ op: "flip", at: 28 + r.int(bytes.byteLength - 28), bit: r.chance(0.5) ? r.pick([30, 31, 23].map((b) => b % 8)) : r.int(8) });
    // Exponent bytes: make NaN/Inf weights likely.
    for (let i = 0, n = r.int(3); i < n; i++) ops.push({ op: "set", at: 28 + 4 * r.int((bytes.byteLength - 28) / 4), hex: r.pick(["0000c07f", "0000807f", "000080ff", "ffffff7f"]) });
    return ops;
  }
  if (r.chance(0.6)) return [{ op: "truncate", length: r.chance(0.3) ? r.int(64) : r.int(bytes.byteLength) }];
  return [{ op: "extend", bytes: r.pick([1, 3, 4, 28, 4096]) }];
}

/** Random ops for a llama2.c tokenizer. */
export function tokenizerOps(r: Rng, bytes: Uint8Array): Op[] {
  const k = r.int(10);
  if (k < 2) return [{ op: "u32", at: 0, value: r.pick([0, 1, 2, -1, 2 ** 16, 2 ** 16 + 1, 2 ** 31, r.int(2 ** 32)]) }];
  if (k < 5) {
    // A piece length field: entries are [f32 score][i32 len][bytes].
    let p = 4;
    const entries: number[] = [];
    while (p + 8 <= bytes.byteLength) {
      entries.push(p);
      p += 8 + new DataView(bytes.buffer, bytes.byteOffset).getInt32(p + 4, true);
    }
    const e = r.pick(entries);
    const ops: Op[] = [{ op: "u32", at: e + 4, value: r.pick([0, 1, 2, 3, 7, 8, 64, 2 ** 16, 2 ** 31, 2 ** 32 - 1, r.int(2 ** 32)]) }];
    if (r.chance(0.3)) ops.push({ op: "set", at: e, hex: r.pick(["0000c07f", "0000807f", "000080ff", "00000000"]) });
    return ops;
  }
  if (k < 8) {
    const ops: Op[] = [];
    for (let i = 0, n = 1 + r.int(10); i < n; i++) ops.push({ op: "flip", at: r.int(bytes.byteLength), bit: r.int(8) });
    return ops;
  }
  if (r.chance(0.6)) return [{ op: "truncate", length: r.int(bytes.byteLength) }];
  return [{ op: "extend", bytes: 1 + r.int(64), fill: r.pick([0, 0x41]) }];
}

/** Random ops for a safetensors file. */
export function safetensorsOps(r: Rng, bytes: Uint8Array): Op[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  const len = v.getUint32(0, true);
  const k = r.int(10);
  if (k < 2) {
    if (r.chance(0.5)) return [{ op: "u32", at: r.pick([0, 4]), value: r.pick([0, 1, 2, len - 1, len + 1, len * 2, 100 * 2 ** 20, 100 * 2 ** 20 + 1, 2 ** 31, 2 ** 32 - 1]) }];
    return [{ op: "flip", at: r.int(8), bit: r.int(8) }];
  }
  if (k < 9) {
    const doc = JSON.parse(dec.decode(bytes.subarray(8, 8 + len)));
    return jsonOps(r, doc, len);
  }
  if (r.chance(0.7)) return [{ op: "truncate", length: r.int(bytes.byteLength) }];
  return [{ op: "extend", bytes: 1 + r.int(64) }];
}

/** Mutations of a stored Hugging Face tokenizer: its JSON (values, deletions, swaps, depth, raw text) or its bytes. */
export function hfTokenizerOps(r: Rng, bytes: Uint8Array): Op[] {
  if (r.chance(0.85)) return jsonOps(r, JSON.parse(dec.decode(bytes)), bytes.byteLength);
  return r.chance(0.6) ? [{ op: "truncate", length: r.int(bytes.byteLength) }] : [{ op: "flip", at: r.int(bytes.byteLength), bit: r.int(8) }];
}

/**
 * Random ops for a GGUF file whose header (metadata + tensor infos) ends at `headerBytes`: the counts
 * at 8 and 16 as u64, u32/u64 fields anywhere in the header (lengths, types, dims, offsets), bit flips,
 * truncation and extension.
 */
export function ggufOps(r: Rng, bytes: Uint8Array, headerBytes: number): Op[] {
  const u64 = (v: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  };
  const big = () => r.pick([0n, 1n, 2n, 31n, 32n, 255n, 256n, 4096n, 1n << 16n, 1n << 24n, 1n << 31n, 1n << 32n, 1n << 40n, (1n << 53n) + 1n, (1n << 63n), (1n << 64n) - 1n, BigInt(r.int(2 ** 31))]);
  const k = r.int(12);
  if (k < 2) return [{ op: "set", at: r.pick([8, 16]), hex: u64(big()) }];
  if (k < 3) return [{ op: "u32", at: 4, value: r.pick([0, 1, 2, 3, 4, 0x02000000, 0x03000000, r.int(2 ** 32)]) }];
  if (k < 6) {
    const ops: Op[] = [];
    for (let i = 0, n = 1 + r.int(3); i < n; i++) {
      const at = 24 + r.int(Math.max(1, headerBytes - 24));
      ops.push(r.chance(0.5) ? { op: "set", at, hex: u64(big()) } : { op: "u32", at, value: r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 30, 99, 2 ** 31, r.int(2 ** 32)]) });
    }
    return ops;
  }
  if (k < 9) {
    const ops: Op[] = [];
    for (let i = 0, n = 1 + r.int(8); i < n; i++) ops.push({ op: "flip", at: r.chance(0.8) ? r.int(headerBytes) : r.int(bytes.byteLength), bit: r.int(8) });
    return ops;
  }
  if (k < 11) return [{ op: "truncate", length: r.chance(0.5) ? r.int(headerBytes) : r.int(bytes.byteLength) }];
  return [{ op: "extend", bytes: r.pick([1, 31, 32, 4096]) }];
}
