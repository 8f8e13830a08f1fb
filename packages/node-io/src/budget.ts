import { FlashError } from "@flashllm/sdk";

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3 };

/**
 * Parses a memory budget: a percentage of the model file's size (`50%`) or a byte count with an
 * optional unit (`600000`, `512KiB`, `1.5GB`).
 */
export function parseBudget(text: string, modelBytes: number): number {
  const t = text.trim().toLowerCase();
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(t);
  if (pct) return Math.floor((Number(pct[1]) / 100) * modelBytes);
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(t);
  if (!m || !(m[2] in UNITS)) throw new FlashError("BAD_ARGUMENT", `cannot read memory budget "${text}": use a percentage of the model file (50%) or bytes (600000, 512KiB, 1.5GB)`);
  return Math.floor(Number(m[1]) * UNITS[m[2]]);
}
