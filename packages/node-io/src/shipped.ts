import { basename } from "node:path";
import { existsSync } from "node:fs";
import { calibrateFile, type CalibrateOptions } from "./commands/calibrate.js";
import { flmFor } from "./model-files.js";
import { SHIPPED_MODELS_DIR } from "./paths.js";

/** The models shipped in `models/`, which `flashllm run` uses without `--model`. */
export const SHIPPED_NAMES = ["stories260K-relu", "stories260K"] as const;
export type ShippedName = (typeof SHIPPED_NAMES)[number];
/** The default: the sparse model with predictors, so the first run shows what flash loading is for. */
export const DEFAULT_SHIPPED: ShippedName = "stories260K-relu";

/**
 * How each shipped model is prepared on first use: stories260K-relu (91% of its FFN neurons exactly 0
 * per token) gets predictors trained on the shipped TinyStories text, so only the neurons a token needs
 * are read; stories260K (SwiGLU, every neuron needed) is the dense comparison.
 */
const RECIPES: Record<ShippedName, { checkpoint: string; tokenizer: string; activation: "silu" | "relu"; calibration?: CalibrateOptions }> = {
  "stories260K-relu": {
    checkpoint: `${SHIPPED_MODELS_DIR}stories260K-relu/stories260K_relu.bin`,
    tokenizer: `${SHIPPED_MODELS_DIR}stories260K-relu/tok512.bin`,
    activation: "relu",
    // docs/sparsity.md's settings for this model: rank 24, 97% recall.
    calibration: { corpus: `${SHIPPED_MODELS_DIR}stories260K-relu/calibration.txt`, rank: 24, recall: 0.97, recallMargin: 0, lookahead: false, positions: 8000, epochs: 10, keepNorm: 0.95, textOffset: 0 },
  },
  stories260K: {
    checkpoint: `${SHIPPED_MODELS_DIR}stories260K/stories260K.bin`,
    tokenizer: `${SHIPPED_MODELS_DIR}stories260K/tok512.bin`,
    activation: "silu",
  },
};

/** The checkpoint and tokenizer of a shipped model (for `--dense`). */
export function shippedFiles(name: ShippedName): { checkpoint: string; tokenizer: string; activation: "silu" | "relu" } {
  return RECIPES[name];
}

/**
 * The `.flm` of a shipped model, made on first use in the cache folder: converted, then (for the ReLU
 * model) calibrated into `<name>-pred.flm`. Concurrent first uses are safe: each step writes a temp
 * file and renames it into place.
 */
export async function shippedFlm(name: ShippedName, log: (msg: string) => void): Promise<string> {
  const r = RECIPES[name];
  const flm = await flmFor(r.checkpoint, r.tokenizer, { activation: r.activation }, log);
  if (!r.calibration) return flm;
  const pred = flm.replace(/\.flm$/, "-pred.flm");
  if (!existsSync(pred)) {
    log(`training sparsity predictors for ${name} on ${basename(r.calibration.corpus)} (first use, once: about 10 s of CPU)`);
    await calibrateFile(flm, pred, r.calibration);
  }
  return pred;
}
