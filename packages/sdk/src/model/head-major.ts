import type { FlmDeclaration } from "../format/layout.js";
import { isBlockDtype } from "../format/rows.js";
import type { Dtype, ModelConfig } from "../format/types.js";
import { headSize } from "./config.js";

/**
 * The output projection `wo` ([dim, nHeads·headSize]) is stored head-major: column-blocked with one
 * block per attention head (docs/FORMAT.md §3.2.1), so a shard owning heads [h0, h1) reads their
 * columns as one contiguous span instead of every whole row. Every converter declares it so through
 * {@link headMajorWo}.
 */

const WO = /^layers\.\d+\.wo$/;

/**
 * The column block `wo` is stored with: the head size, or `undefined` (row-major) when one head is
 * the whole row (nothing to gain) or when the head size does not hold whole blocks of a block dtype
 * (q8_0/q4_0 blocks of 32 values along the row cannot be cut inside a block).
 */
export function woColumnBlock(c: ModelConfig, dtype: Dtype): number | undefined {
  const hs = headSize(c);
  if (c.nHeads === 1) return undefined;
  if (isBlockDtype(dtype) && hs % 32 !== 0) return undefined;
  return hs;
}

/** `decl` with every layer's `wo` declared head-major (where {@link woColumnBlock} allows). */
export function headMajorWo(decl: FlmDeclaration): FlmDeclaration {
  const tensors = decl.tensors.map((t) => {
    if (!WO.test(t.name) || t.shape.length !== 2 || t.shape[1] !== decl.config.dim) return t;
    const block = woColumnBlock(decl.config, t.dtype ?? decl.dtype.resident);
    const { columnBlock: _, ...rest } = t;
    return block === undefined ? rest : { ...rest, columnBlock: block };
  });
  return { ...decl, tensors };
}
