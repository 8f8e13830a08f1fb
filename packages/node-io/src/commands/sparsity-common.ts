import { readFile } from "node:fs/promises";
import type { ActivityRule, ModelConfig } from "@flashllm/sdk/internal";

/** Reads `bytes` bytes of a text file from `offset` (a byte range keeps calibration and evaluation text apart). */
export async function readText(path: string, offset = 0, bytes = Infinity): Promise<string> {
  const all = await readFile(path);
  return new TextDecoder().decode(all.subarray(offset, Number.isFinite(bytes) ? offset + bytes : undefined));
}

/** ReLU models: exact zeros. SwiGLU: the neurons that keep `share` of ‖h‖² per position. */
export function ruleFor(c: ModelConfig, share: number): ActivityRule {
  return c.activation === "relu" ? { kind: "nonzero" } : { kind: "norm-share", share };
}

export const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
