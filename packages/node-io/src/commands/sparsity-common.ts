import { readFile } from "node:fs/promises";
import type { ActivityRule, ModelConfig } from "@flashllm/sdk/internal";
import { isReluFamily } from "@flashllm/sdk/internal";

/** Reads `bytes` bytes of a text file from `offset` (a byte range keeps calibration and evaluation text apart). */
export async function readText(path: string, offset = 0, bytes = Infinity): Promise<string> {
  const all = await readFile(path);
  return new TextDecoder().decode(all.subarray(offset, Number.isFinite(bytes) ? offset + bytes : undefined));
}

/** The ReLU family (relu, fatrelu, drelu): exact zeros. SwiGLU/GELU: the neurons that keep `share` of ‖h‖² per position. */
export function ruleFor(c: ModelConfig, share: number): ActivityRule {
  return isReluFamily(c.activation) ? { kind: "nonzero" } : { kind: "norm-share", share };
}

export const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
