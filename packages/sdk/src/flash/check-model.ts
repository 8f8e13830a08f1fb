import { FormatError } from "../errors.js";
import type { Manifest } from "../format/types.js";

/**
 * Checks that the resident tensors the forward pass reads exist with the shapes it assumes (llama and
 * OPT families). The manifest validator checks the container, not the model: without this, a file
 * whose tensors disagree with its config (two names swapped, a head count that changes kvDim, a
 * position table shorter than the context) would make the kernels read and write past the ends of
 * WASM blocks, corrupting the heap.
 */
export function checkModelTensors(m: Manifest, contextLength: number): void {
  const c = m.config;
  const kv = (c.dim * c.nKvHeads) / c.nHeads;
  const byName = new Map(m.tensors.map((t) => [t.name, t]));
  const check = (name: string, shape: number[], vector: boolean, required: boolean): void => {
    const t = byName.get(name);
    if (!t) {
      if (required) throw new FormatError("BAD_MANIFEST", `tensor "${name}" is missing: the forward pass needs it`, { field: "tensors", tensor: name });
      return;
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new FormatError("WRONG_DIMS", `tensor "${name}" has shape [${t.shape.join(", ")}] but the config (dim ${c.dim}, kv dim ${kv}, vocab ${c.vocabSize}) needs [${shape.join(", ")}]`, {
        field: "tensors",
        tensor: name,
        expected: shape,
        actual: [...t.shape],
      });
    }
    if (vector && t.dtype !== "f32") throw new FormatError("UNSUPPORTED", `tensor "${name}" is ${t.dtype}; norm weights and biases must be f32`, { tensor: name, actual: t.dtype });
  };
  const want = (name: string, shape: number[], vector = false) => check(name, shape, vector, true);
  const bias = (name: string, n: number) => check(name, [n], true, false);
  const layerNorm = c.norm === "layernorm";
  want("tok_embeddings", [c.vocabSize, c.dim]);
  if (!c.sharedClassifier) want("output", [c.vocabSize, c.dim]);
  bias("output_bias", c.vocabSize);
  want("norm", [c.dim], true);
  if (layerNorm) want("norm_bias", [c.dim], true);
  if (c.ropeStyle === "none") {
    // Learned positions: row `pos` is read for every position of the context.
    const t = byName.get("pos_embeddings");
    if (!t) want("pos_embeddings", [contextLength, c.dim]);
    else if (t.shape.length !== 2 || t.shape[0] < contextLength || t.shape[1] !== c.dim) want("pos_embeddings", [Math.max(contextLength, t.shape[0] ?? 0), c.dim]);
  }
  for (let l = 0; l < c.nLayers; l++) {
    const L = `layers.${l}.`;
    want(L + "attn_norm", [c.dim], true);
    want(L + "wq", [c.dim, c.dim]);
    want(L + "wk", [kv, c.dim]);
    want(L + "wv", [kv, c.dim]);
    want(L + "wo", [c.dim, c.dim]);
    want(L + "ffn_norm", [c.dim], true);
    if (layerNorm) {
      want(L + "attn_norm_bias", [c.dim], true);
      want(L + "ffn_norm_bias", [c.dim], true);
    }
    bias(L + "bq", c.dim);
    bias(L + "bk", kv);
    bias(L + "bv", kv);
    bias(L + "bo", c.dim);
    bias(L + "b2", c.dim);
  }
}
