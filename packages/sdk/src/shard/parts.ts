import { rowBytes } from "../format/rows.js";
import { ALLOC_BLOCK_OVERHEAD } from "../kernels/alloc-overhead.js";
import { directPlacementSlack } from "../model/weights.js";
import type { Manifest, TensorEntry } from "../format/types.js";
import type { Range, ShardSlice } from "./plan.js";
import { evenSplit } from "./plan.js";

/**
 * Which resident tensors (and which of their rows) each party of a sharded model keeps, and which
 * bytes each one checksums. The memory plan, the loaders and the CRC check all work from this one
 * list, so what is charged to a budget is what is loaded.
 *
 * A tensor is seen as `rows × cols` (a vector `[n]` as n rows of 1): q8 scales are per row, so a row
 * range of a tensor is one contiguous span of its data and one of its scales.
 */
export interface TensorPart {
  /** The tensor in the manifest. */
  tensor: string;
  /** Name in the party's weight store. */
  as: string;
  /** Rows read. */
  rows: Range;
  /** Columns kept of each row (the output projection's columns of a shard's heads); default all. */
  cols?: Range;
  /** Rows whose data and scales this party checksums: every byte of the section is checksummed once. */
  crcRows?: Range;
}

/** Rows and columns of a tensor as the parts see it. */
export function matrixShape(t: TensorEntry): { rows: number; cols: number } {
  if (t.shape.length === 1) return { rows: t.shape[0], cols: 1 };
  const cols = t.shape[t.shape.length - 1];
  return { rows: t.shape.reduce((a, b) => a * b, 1) / cols, cols };
}

/**
 * How a part is read: `rows` (whole rows, straight into their block), `blocks` (columns of a
 * column-blocked tensor, docs/FORMAT.md §3.2.1: one contiguous span straight into the block, then
 * rearranged into rows in place) or `gather` (some columns of a row-major tensor, as in version-1
 * files: whole rows through a host buffer, the kept columns copied out). `rows` and `blocks` parts
 * are placed to agree with their file offset for in-place direct reads (and charged the slack).
 */
export function partReadMode(p: TensorPart, t: TensorEntry): "rows" | "blocks" | "gather" {
  if (t.columnBlock !== undefined) return "blocks";
  return p.cols ? "gather" : "rows";
}

const all = (t: TensorEntry): Range => ({ first: 0, count: matrixShape(t).rows });

/** What the coordinator keeps: embeddings, positions, norms, and the biases added after a reduction. */
export function coordinatorParts(m: Manifest): TensorPart[] {
  const parts: TensorPart[] = [];
  const byName = new Map(m.tensors.map((t) => [t.name, t]));
  const whole = (name: string) => {
    const t = byName.get(name);
    if (t) parts.push({ tensor: name, as: name, rows: all(t), crcRows: all(t) });
  };
  whole("tok_embeddings");
  whole("pos_embeddings");
  whole("norm");
  whole("norm_bias");
  for (let l = 0; l < m.config.nLayers; l++) {
    for (const n of ["attn_norm", "attn_norm_bias", "ffn_norm", "ffn_norm_bias", "bo", "b2"]) whole(`layers.${l}.${n}`);
  }
  return parts;
}

/**
 * What shard `slice.index` of `slices` keeps: q/k/v rows (and biases) of its heads, the output
 * projection's columns of its heads (head-major files: one span of its own; row-major files: whole
 * rows are read, their checksum split among the shards that read them; q8 scales are split so in
 * both), its vocabulary rows of the classifier, and, with predictors, the first
 * matrix whole and the second matrix's and bias's rows of its neurons.
 */
export function shardParts(m: Manifest, slices: readonly ShardSlice[], slice: ShardSlice, withPredictor: boolean): TensorPart[] {
  const c = m.config;
  const hs = c.dim / c.nHeads;
  const byName = new Map(m.tensors.map((t) => [t.name, t]));
  const parts: TensorPart[] = [];
  const rowsOf = (name: string, rows: Range, as = name, owned = true) => {
    if (rows.count > 0 && byName.has(name)) parts.push({ tensor: name, as, rows, crcRows: owned ? rows : undefined });
  };
  // A tensor every reader reads whole: each checksums an even share of its rows.
  const shared = (name: string, readers: readonly ShardSlice[], cols?: Range) => {
    const t = byName.get(name);
    if (!t) return;
    const at = readers.indexOf(slice);
    parts.push({ tensor: name, as: name, rows: all(t), cols, crcRows: evenSplit(matrixShape(t).rows, readers.length, at) });
  };
  const attnReaders = slices.filter((s) => s.heads.count > 0);
  const q: Range = { first: slice.heads.first * hs, count: slice.heads.count * hs };
  const kv: Range = { first: slice.kvHeads.first * hs, count: slice.kvHeads.count * hs };
  for (let l = 0; l < c.nLayers; l++) {
    const L = `layers.${l}.`;
    if (slice.heads.count === 0) continue;
    rowsOf(L + "wq", q);
    rowsOf(L + "bq", q);
    rowsOf(L + "wk", kv);
    rowsOf(L + "bk", kv);
    rowsOf(L + "wv", kv);
    rowsOf(L + "bv", kv);
    shared(L + "wo", attnReaders, q);
  }
  // The classifier: its own tensor, or the embedding (which the coordinator reads and checksums whole).
  if (c.sharedClassifier) rowsOf("tok_embeddings", slice.vocab, "output", false);
  else rowsOf("output", slice.vocab);
  rowsOf("output_bias", slice.vocab);
  if (withPredictor) {
    for (let l = 0; l < c.nLayers; l++) {
      shared(`predictor.${l}.a`, slices);
      rowsOf(`predictor.${l}.b`, slice.neurons);
      rowsOf(`predictor.${l}.c`, slice.neurons);
    }
  }
  return parts;
}

/** WASM bytes a list of parts takes once loaded (with the allocator's per-block overhead). */
export function partBytes(m: Manifest, parts: readonly TensorPart[]): number {
  const byName = new Map(m.tensors.map((t) => [t.name, t]));
  let total = 0;
  for (const p of parts) {
    const t = byName.get(p.tensor)!;
    const cols = p.cols?.count ?? matrixShape(t).cols;
    const data = p.rows.count * rowBytes(t.dtype, cols);
    const slack = partReadMode(p, t) === "gather" ? 0 : directPlacementSlack(data); // placed for direct reads (loadParts)
    total += slack + (t.dtype === "q8" ? data + p.rows.count * 4 + 2 * ALLOC_BLOCK_OVERHEAD : data + ALLOC_BLOCK_OVERHEAD);
  }
  return total;
}
