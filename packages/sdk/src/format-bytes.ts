/**
 * A byte count for people, in binary units (B, KiB, MiB, GiB, TiB): the one formatter of the CLI, the
 * worker's messages and the demo, so every figure a user compares is in the same units.
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}
