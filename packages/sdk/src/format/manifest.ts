import { FormatError } from "../errors.js";
import { alignUp } from "./bytes.js";
import { bundleLayout } from "./bundle.js";
import { isBlockDtype, rowBytes } from "./rows.js";
import { arr, bool, fail, int, name, num, obj, oneOf } from "./check.js";
import { BUNDLE_CRC_BYTES, FLM_READ_VERSIONS, FLM_VERSION, HEADER_BYTES, LIMITS, MAX_BUNDLE_ALIGNMENT, MIN_BUNDLE_ALIGNMENT, SECTION_ALIGNMENT, TENSOR_ALIGNMENT } from "./constants.js";
import type { Dtype, FfnInfo, Manifest, ModelConfig, PredictorInfo, SectionEntry, TensorEntry, TokenizerInfo } from "./types.js";

/**
 * Manifest validation and (de)serialisation. {@link validateManifest} checks every field and every
 * cross-field rule of docs/FORMAT.md §5 without touching the big sections, and returns a fresh
 * manifest whose keys are in canonical order: serialising it gives the same bytes the writer wrote.
 */

const DTYPES = ["f32", "q8", "f16", "q8_0", "q4_0"] as const;
const MAX = Number.MAX_SAFE_INTEGER;

/** Options of {@link validateManifest}. */
export interface ValidateOptions {
  /** First byte sections may use (the end of header + manifest); defaults to 16. */
  dataStart?: number;
}

/**
 * Checks a parsed manifest against the format rules for a file of `fileSize` bytes and returns it
 * typed and in canonical key order. Throws a FormatError naming the field: BAD_MANIFEST (wrong type,
 * misalignment, overlap, missing section), WRONG_DIMS (model dimensions out of bounds or
 * inconsistent), UNSUPPORTED (unknown enum value), BAD_VERSION, SIZE_MISMATCH (sizes that disagree
 * with shapes and dtypes), OUT_OF_BOUNDS (tensor outside its section), TRUNCATED (section past the end of the file).
 */
export function validateManifest(json: unknown, fileSize: number, options: ValidateOptions = {}): Manifest {
  const root = obj(json, "manifest");
  if (root.format !== "flashllm") fail("BAD_MANIFEST", "format", '"flashllm"', root.format);
  const version = int(root.version, "version", 0, 0xffffffff);
  if (!FLM_READ_VERSIONS.includes(version)) {
    throw new FormatError("BAD_VERSION", `manifest field version: expected ${FLM_READ_VERSIONS.join(" or ")}, got ${version}`, { field: "version", expected: FLM_READ_VERSIONS.join(" or "), actual: version });
  }
  const architecture = oneOf(root.architecture, "architecture", ["llama", "opt"] as const);
  const config = validateConfig(root.config);
  const d = obj(root.dtype, "dtype");
  const dtype = { resident: oneOf(d.resident, "dtype.resident", DTYPES), ffn: oneOf(d.ffn, "dtype.ffn", DTYPES) };
  const sections = validateSections(root.sections, fileSize, options.dataStart ?? HEADER_BYTES);
  const byName = new Map(sections.map((s) => [s.name, s]));
  const tensors = validateTensors(root.tensors, byName, version);
  const ffn = validateFfn(root.ffn, config, dtype.ffn, byName);
  const tokenizer = validateTokenizer(root.tokenizer, byName);
  // A section may back only one role: a layer that is also the resident section would be read as both.
  const roles = ["resident", tokenizer.section, ffn.crcSection, ...ffn.layers.map((l) => l.section)];
  const seen = new Set<string>();
  for (const r of roles) {
    if (seen.has(r)) fail("BAD_MANIFEST", "sections", "each section used for one purpose only", r, { section: r });
    seen.add(r);
  }
  const manifest: Manifest = { format: "flashllm", version, architecture, config, dtype, tensors, ffn, tokenizer, sections };
  if (root.provenance !== undefined) {
    manifest.provenance = plainCopy(obj(root.provenance, "provenance"), "provenance");
  }
  if (root.predictor !== undefined) manifest.predictor = validatePredictor(root.predictor, config, tensors);
  if (root.chatTemplate !== undefined) manifest.chatTemplate = validateChatTemplate(root.chatTemplate);
  return manifest;
}

/** Checks a model config (dims bounded and consistent); throws a FormatError naming the field. */
export function validateConfig(v: unknown): ModelConfig {
  const c = obj(v, "config");
  const W = "WRONG_DIMS";
  const dim = int(c.dim, "config.dim", 1, LIMITS.dim, W);
  const hiddenDim = int(c.hiddenDim, "config.hiddenDim", 1, LIMITS.hiddenDim, W);
  const nLayers = int(c.nLayers, "config.nLayers", 1, LIMITS.nLayers, W);
  const nHeads = int(c.nHeads, "config.nHeads", 1, Math.min(dim, LIMITS.nHeads), W);
  const nKvHeads = int(c.nKvHeads, "config.nKvHeads", 1, nHeads, W);
  const vocabSize = int(c.vocabSize, "config.vocabSize", 1, LIMITS.vocabSize, W);
  const seqLen = int(c.seqLen, "config.seqLen", 1, LIMITS.seqLen, W);
  const normEps = num(c.normEps, "config.normEps", 0, 1);
  const ropeTheta = num(c.ropeTheta, "config.ropeTheta", 0, Number.MAX_VALUE);
  const ropeStyle = oneOf(c.ropeStyle, "config.ropeStyle", ["interleaved", "neox", "none"] as const);
  const activation = oneOf(c.activation, "config.activation", ["silu", "relu", "gelu", "fatrelu", "drelu"] as const);
  const gated = bool(c.gated, "config.gated");
  const sharedClassifier = bool(c.sharedClassifier, "config.sharedClassifier");
  const norm = oneOf(c.norm, "config.norm", ["rmsnorm", "layernorm"] as const);
  if (dim % nHeads !== 0) fail(W, "config.nHeads", `a divisor of config.dim (${dim})`, nHeads);
  if (nHeads % nKvHeads !== 0) fail(W, "config.nKvHeads", `a divisor of config.nHeads (${nHeads})`, nKvHeads);
  if (ropeStyle !== "none" && (dim / nHeads) % 2 !== 0) fail(W, "config.nHeads", `a head size (dim/nHeads) that is even for RoPE`, nHeads);
  const config: ModelConfig = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen, normEps, ropeTheta, ropeStyle, activation, gated, sharedClassifier, norm };
  if (activation === "fatrelu") config.activationThreshold = num(c.activationThreshold, "config.activationThreshold", -LIMITS.activationThreshold, LIMITS.activationThreshold);
  else if (c.activationThreshold !== undefined) fail("BAD_MANIFEST", "config.activationThreshold", 'absent unless config.activation is "fatrelu"', c.activationThreshold);
  if (activation === "drelu" && !gated) fail("BAD_MANIFEST", "config.activation", 'a gated FFN for "drelu" (ReLU on gate and up)', activation);
  if (c.maxPositions !== undefined) config.maxPositions = int(c.maxPositions, "config.maxPositions", 1, LIMITS.maxPositions, W);
  return config;
}

function validateSections(v: unknown, fileSize: number, dataStart: number): SectionEntry[] {
  const list = arr(v, "sections", LIMITS.sections);
  const out: SectionEntry[] = [];
  const names = new Set<string>();
  for (let k = 0; k < list.length; k++) {
    const f = `sections[${k}]`;
    const s = obj(list[k], f);
    const sname = name(s.name, `${f}.name`);
    if (names.has(sname)) fail("BAD_MANIFEST", `${f}.name`, "a name not used by another section", sname, { section: sname });
    names.add(sname);
    const offset = int(s.offset, `${f}.offset`, 0, MAX);
    const length = int(s.length, `${f}.length`, 0, MAX);
    if (typeof s.crc32 !== "string" || !/^[0-9a-f]{8}$/.test(s.crc32)) fail("BAD_MANIFEST", `${f}.crc32`, "8 lowercase hex digits", s.crc32, { section: sname });
    if (offset % SECTION_ALIGNMENT !== 0) fail("BAD_MANIFEST", `${f}.offset`, `a multiple of ${SECTION_ALIGNMENT}`, offset, { section: sname });
    if (offset < dataStart) fail("BAD_MANIFEST", `${f}.offset`, `at least ${dataStart} (after the header and manifest)`, offset, { section: sname });
    const end = offset + length;
    if (!Number.isSafeInteger(end)) fail("BAD_MANIFEST", `${f}.length`, "offset + length to be a safe integer", length, { section: sname });
    if (end > fileSize) {
      throw new FormatError("TRUNCATED", `section "${sname}" spans [${offset}, ${end}) but the file has only ${fileSize} bytes (truncated file or bad section table)`, {
        field: `${f}`,
        section: sname,
        expected: `end <= ${fileSize}`,
        actual: end,
      });
    }
    out.push({ name: sname, offset, length, crc32: s.crc32 });
  }
  // Sorted by start (empty sections first at a tie), each section must end before the next starts.
  const sorted = [...out].sort((a, b) => a.offset - b.offset || a.length - b.length);
  for (let k = 1; k < sorted.length; k++) {
    const a = sorted[k - 1];
    const b = sorted[k];
    if (a.offset + a.length > b.offset) {
      throw new FormatError("BAD_MANIFEST", `sections "${a.name}" [${a.offset}, ${a.offset + a.length}) and "${b.name}" [${b.offset}, ${b.offset + b.length}) overlap`, {
        field: "sections",
        sections: [a.name, b.name],
      });
    }
  }
  return out;
}

function requireSection(byName: Map<string, SectionEntry>, sname: string, field: string): SectionEntry {
  const s = byName.get(sname);
  if (!s) fail("BAD_MANIFEST", field, "the name of a section in the section table", sname, { section: sname });
  return s;
}

function validateTensors(v: unknown, byName: Map<string, SectionEntry>, version: number): TensorEntry[] {
  const resident = requireSection(byName, "resident", "sections");
  const list = arr(v, "tensors", LIMITS.tensors);
  const out: TensorEntry[] = [];
  const names = new Set<string>();
  // Byte ranges [start, end, tensor] of data and scales, to reject tensors that share bytes.
  const ranges: [number, number, string][] = [];
  const place = (f: string, tname: string, at: number, bytes: number): void => {
    if (at % TENSOR_ALIGNMENT !== 0) fail("BAD_MANIFEST", f, `a multiple of ${TENSOR_ALIGNMENT}`, at, { tensor: tname });
    if (at + bytes > resident.length) {
      throw new FormatError("OUT_OF_BOUNDS", `manifest field ${f}: tensor "${tname}" bytes [${at}, ${at + bytes}) lie outside the resident section (${resident.length} bytes)`, {
        field: f,
        tensor: tname,
        expected: `end <= ${resident.length}`,
        actual: at + bytes,
      });
    }
    ranges.push([at, at + bytes, tname]);
  };
  for (let k = 0; k < list.length; k++) {
    const f = `tensors[${k}]`;
    const t = obj(list[k], f);
    const tname = name(t.name, `${f}.name`);
    if (names.has(tname)) fail("BAD_MANIFEST", `${f}.name`, "a name not used by another tensor", tname, { tensor: tname });
    names.add(tname);
    const dtype = oneOf(t.dtype, `${f}.dtype`, DTYPES);
    const shapeIn = arr(t.shape, `${f}.shape`, LIMITS.tensorRank);
    if (shapeIn.length === 0) fail("BAD_MANIFEST", `${f}.shape`, "1 to 4 dimensions", shapeIn);
    const shape = shapeIn.map((n, j) => int(n, `${f}.shape[${j}]`, 1, LIMITS.tensorDim, "WRONG_DIMS"));
    const elements = shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(elements * 4)) fail("WRONG_DIMS", `${f}.shape`, "a shape whose byte size is a safe integer", shape.join("×"), { tensor: tname });
    const offset = int(t.offset, `${f}.offset`, 0, MAX);
    const length = int(t.length, `${f}.length`, 0, MAX);
    const cols = shape[shape.length - 1];
    if (isBlockDtype(dtype) && cols % 32 !== 0) fail("WRONG_DIMS", `${f}.shape`, `rows of a multiple of 32 values for ${dtype}`, cols, { tensor: tname });
    const expectedLength = (elements / cols) * rowBytes(dtype, cols);
    if (length !== expectedLength) {
      throw new FormatError("SIZE_MISMATCH", `manifest field ${f}.length: tensor "${tname}" (${dtype}, shape [${shape.join(", ")}]) needs ${expectedLength} bytes, manifest says ${length}`, {
        field: `${f}.length`,
        tensor: tname,
        expected: expectedLength,
        actual: length,
      });
    }
    place(`${f}.offset`, tname, offset, length);
    const entry: TensorEntry = { name: tname, dtype, shape, offset, length };
    if (t.columnBlock !== undefined) {
      // Column blocks are new in version 2: a version-1 reader would take them for rows.
      if (version < FLM_VERSION) fail("BAD_MANIFEST", `${f}.columnBlock`, `container version ${FLM_VERSION} or later for column-blocked tensors`, version, { tensor: tname });
      const block = int(t.columnBlock, `${f}.columnBlock`, 1, cols, "WRONG_DIMS");
      if (shape.length !== 2) fail("WRONG_DIMS", `${f}.columnBlock`, "a matrix (2 dimensions) to cut into column blocks", shape.join("×"), { tensor: tname });
      if (cols % block !== 0) fail("WRONG_DIMS", `${f}.columnBlock`, `a divisor of the ${cols} columns`, block, { tensor: tname });
      if (isBlockDtype(dtype) && block % 32 !== 0) fail("WRONG_DIMS", `${f}.columnBlock`, `a multiple of 32 (${dtype} blocks hold 32 values)`, block, { tensor: tname });
      entry.columnBlock = block;
    }
    if (dtype === "q8") {
      const rows = elements / shape[shape.length - 1];
      const scaleOffset = int(t.scaleOffset, `${f}.scaleOffset`, 0, MAX);
      place(`${f}.scaleOffset`, tname, scaleOffset, rows * 4);
      entry.scaleOffset = scaleOffset;
    } else if (t.scaleOffset !== undefined) {
      fail("BAD_MANIFEST", `${f}.scaleOffset`, "no scaleOffset for an f32 tensor", t.scaleOffset, { tensor: tname });
    }
    out.push(entry);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let k = 1; k < ranges.length; k++) {
    if (ranges[k - 1][1] > ranges[k][0]) {
      throw new FormatError("BAD_MANIFEST", `tensors "${ranges[k - 1][2]}" and "${ranges[k][2]}" overlap in the resident section at byte ${ranges[k][0]}`, {
        field: "tensors",
        tensors: [ranges[k - 1][2], ranges[k][2]],
      });
    }
  }
  return out;
}

function sizeMismatch(field: string, section: string, what: string, expected: number, actual: number): never {
  throw new FormatError("SIZE_MISMATCH", `manifest field ${field}: section "${section}" has ${actual} bytes, expected ${expected} (${what})`, {
    field,
    section,
    expected,
    actual,
  });
}

function validateFfn(v: unknown, config: ModelConfig, dtype: Dtype, byName: Map<string, SectionEntry>): FfnInfo {
  const f = obj(v, "ffn");
  const gated = bool(f.gated, "ffn.gated");
  if (gated !== config.gated) fail("BAD_MANIFEST", "ffn.gated", `${config.gated} (config.gated)`, gated);
  const fdtype = oneOf(f.dtype, "ffn.dtype", DTYPES);
  if (fdtype !== dtype) fail("BAD_MANIFEST", "ffn.dtype", `${JSON.stringify(dtype)} (dtype.ffn)`, fdtype);
  const bundleBytes = int(f.bundleBytes, "ffn.bundleBytes", 1, MAX);
  const expectedBytes = bundleLayout(config.dim, dtype, gated).bundleBytes;
  if (bundleBytes !== expectedBytes) {
    throw new FormatError("SIZE_MISMATCH", `manifest field ffn.bundleBytes: a ${dtype} ${gated ? "gated" : "ungated"} bundle of dim ${config.dim} has ${expectedBytes} bytes, manifest says ${bundleBytes}`, {
      field: "ffn.bundleBytes",
      expected: expectedBytes,
      actual: bundleBytes,
    });
  }
  const bundleStride = int(f.bundleStride, "ffn.bundleStride", bundleBytes, MAX);
  let strideOk = false;
  for (let p = MIN_BUNDLE_ALIGNMENT; p <= MAX_BUNDLE_ALIGNMENT; p *= 2) if (alignUp(bundleBytes, p) === bundleStride) strideOk = true;
  if (!strideOk) fail("BAD_MANIFEST", "ffn.bundleStride", `ffn.bundleBytes (${bundleBytes}) rounded up to a power of two ≥ ${MIN_BUNDLE_ALIGNMENT}`, bundleStride);
  const layerBytes = config.hiddenDim * bundleStride;
  if (!Number.isSafeInteger(layerBytes)) fail("WRONG_DIMS", "ffn.bundleStride", "hiddenDim·bundleStride to be a safe integer", bundleStride);
  const crcSection = name(f.crcSection, "ffn.crcSection");
  const crc = requireSection(byName, crcSection, "ffn.crcSection");
  const crcBytes = config.nLayers * config.hiddenDim * BUNDLE_CRC_BYTES;
  if (crc.length !== crcBytes) sizeMismatch("ffn.crcSection", crcSection, `${BUNDLE_CRC_BYTES} bytes per bundle × ${config.nLayers} layers × ${config.hiddenDim} neurons`, crcBytes, crc.length);
  const layersIn = arr(f.layers, "ffn.layers", LIMITS.nLayers);
  if (layersIn.length !== config.nLayers) fail("BAD_MANIFEST", "ffn.layers", `${config.nLayers} entries (config.nLayers)`, layersIn);
  const layers = layersIn.map((l, k) => {
    const field = `ffn.layers[${k}].section`;
    const sname = name(obj(l, `ffn.layers[${k}]`).section, field);
    const s = requireSection(byName, sname, field);
    if (s.length !== layerBytes) sizeMismatch(field, sname, `${config.hiddenDim} bundles × stride ${bundleStride}`, layerBytes, s.length);
    return { section: sname };
  });
  return { bundleBytes, bundleStride, gated, dtype: fdtype, crcSection, layers };
}

function validateTokenizer(v: unknown, byName: Map<string, SectionEntry>): TokenizerInfo {
  const t = obj(v, "tokenizer");
  const kind = oneOf(t.kind, "tokenizer.kind", ["llama2c", "chars", "hf", "none"] as const);
  const section = name(t.section, "tokenizer.section");
  const s = requireSection(byName, section, "tokenizer.section");
  if (kind === "none" && s.length !== 0) sizeMismatch("tokenizer.section", section, 'tokenizer kind "none" stores nothing', 0, s.length);
  return { kind, section };
}

/** The chat template: a non-empty string of at most LIMITS.chatTemplateLength characters (its Jinja is parsed when a chat renders it). */
function validateChatTemplate(v: unknown): string {
  if (typeof v !== "string") fail("BAD_MANIFEST", "chatTemplate", "a string (Jinja)", v);
  if (v.length === 0 || v.length > LIMITS.chatTemplateLength) fail("BAD_MANIFEST", "chatTemplate", `1 to ${LIMITS.chatTemplateLength} characters`, `${v.length} characters`);
  return v;
}

/**
 * A plain-data copy of a free-form manifest object (round-trip through JSON). JSON.parse accepts any
 * nesting depth but JSON.stringify recurses: a hostile manifest nested 100 000 deep would throw a
 * RangeError (stack overflow), reported here as BAD_MANIFEST naming the field.
 */
function plainCopy(v: Record<string, unknown>, field: string): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(v)) as Record<string, unknown>;
  } catch (e) {
    return fail("BAD_MANIFEST", field, "JSON data nested less deeply than the stack allows", v, { cause: String(e) });
  }
}

/** UTF-8 JSON bytes of a manifest. Deterministic: same manifest, same bytes (keys in the manifest's order). */
export function encodeManifest(manifest: Manifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(manifest));
}

/** Parses manifest bytes into JSON (not yet validated). Throws BAD_MANIFEST for bad UTF-8 or JSON. */
export function decodeManifest(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (e) {
    throw new FormatError("BAD_MANIFEST", `manifest is not valid UTF-8 (${bytes.byteLength} bytes)`, { cause: String(e) });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError("BAD_MANIFEST", `manifest is not valid JSON: ${(e as Error).message}`, { cause: String(e) });
  }
}

/** Predictor metadata: one entry per layer, and each layer's tensors present with the right shapes. */
function validatePredictor(v: unknown, config: ModelConfig, tensors: TensorEntry[]): PredictorInfo {
  const p = obj(v, "predictor");
  oneOf(p.kind, "predictor.kind", ["lowrank"] as const);
  const recallTarget = p.recallTarget === undefined ? undefined : num(p.recallTarget, "predictor.recallTarget", 0, 1);
  const input = p.input === undefined ? undefined : oneOf(p.input, "predictor.input", ["ffn", "residual"] as const);
  const layersRaw = arr(p.layers, "predictor.layers", LIMITS.nLayers);
  if (layersRaw.length !== config.nLayers) fail("WRONG_DIMS", "predictor.layers", `${config.nLayers} entries (one per layer)`, layersRaw.length);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  // One low-rank entry: its rank, threshold, and tensors `${prefix}.a/.b/.c` present with the right shapes.
  const entry = (raw: unknown, field: string, prefix: string) => {
    const e = obj(raw, field);
    const rank = int(e.rank, `${field}.rank`, 1, config.hiddenDim);
    const threshold = num(e.threshold, `${field}.threshold`, -1e30, 1e30);
    const want: [string, number[]][] = [[`${prefix}.a`, [rank, config.dim]], [`${prefix}.b`, [config.hiddenDim, rank]], [`${prefix}.c`, [config.hiddenDim]]];
    for (const [name, shape] of want) {
      const t = byName.get(name);
      if (t?.dtype !== "f32" || t.shape.join(",") !== shape.join(",")) fail("WRONG_DIMS", `tensors.${name}`, `f32 [${shape.join(", ")}]`, t ? `${t.dtype} [${t.shape.join(", ")}]` : "missing");
    }
    return { rank, threshold };
  };
  const layers = layersRaw.map((raw, l) => entry(raw, `predictor.layers[${l}]`, `predictor.${l}`));
  if (typeof p.modelFingerprint !== "string" || !/^[0-9a-f]{8}$/.test(p.modelFingerprint)) fail("BAD_MANIFEST", "predictor.modelFingerprint", "8 hex digits", p.modelFingerprint);
  const info: PredictorInfo = { kind: "lowrank", ...(recallTarget !== undefined ? { recallTarget } : {}), ...(input !== undefined ? { input } : {}), layers, modelFingerprint: p.modelFingerprint as string };
  if (p.lookahead !== undefined) {
    const raw = arr(p.lookahead, "predictor.lookahead", LIMITS.nLayers);
    if (raw.length !== config.nLayers - 1) fail("WRONG_DIMS", "predictor.lookahead", `${config.nLayers - 1} entries (one per layer but the last)`, raw.length);
    info.lookahead = raw.map((r, l) => entry(r, `predictor.lookahead[${l}]`, `predictor.${l}.next`));
  }
  if (p.calibration !== undefined) info.calibration = plainCopy(obj(p.calibration, "predictor.calibration"), "predictor.calibration");
  return info;
}
