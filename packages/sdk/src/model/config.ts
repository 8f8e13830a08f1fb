import type { ModelConfig } from "../format/types.js";

/**
 * The shape and arithmetic of a model, whatever file it came from: the `.flm` manifest's `config`
 * (docs/FORMAT.md), defined with the format.
 */
export type { ModelConfig };

/** Size of one attention head. */
export function headSize(c: ModelConfig): number {
  return c.dim / c.nHeads;
}

/** Width of the key/value projections. */
export function kvDim(c: ModelConfig): number {
  return (c.dim * c.nKvHeads) / c.nHeads;
}
