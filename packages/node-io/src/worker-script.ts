import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The path of one of this package's built worker scripts (`dist/<name>`): beside the running bundle in
 * dist/, or in dist/ when running from the sources (tests). Throws naming where it looked.
 */
export function workerScript(name: string): string {
  const candidates = [new URL(`./${name}`, import.meta.url), new URL(`../dist/${name}`, import.meta.url)];
  for (const u of candidates) {
    const p = fileURLToPath(u);
    if (existsSync(p)) return p;
  }
  throw new Error(`the worker script ${name} is not built (looked for ${candidates.map((u) => fileURLToPath(u)).join(", ")}): run npm run build`);
}
