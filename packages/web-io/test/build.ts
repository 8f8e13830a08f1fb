// The browser tests and the bundle check run against packages/web-io/dist. `scripts/setup.sh` builds it;
// this rebuilds it when a source is newer (a developer running vitest right after an edit), under a
// lock, because vitest runs test files in parallel processes.
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const WEB_IO = fileURLToPath(new URL("..", import.meta.url));
export const ROOT = join(WEB_IO, "../..");
export const SDK_DIST = join(ROOT, "packages/sdk/dist/index.js");
const OUTPUTS = ["index.js", "index.d.ts", "worker.js", "shard-worker.js", "demo.js"].map((f) => join(WEB_IO, "dist", f));

function newest(paths: string[]): number {
  let t = 0;
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const st = statSync(p);
    if (st.isDirectory()) t = Math.max(t, newest(readdirSync(p).map((f) => join(p, f))));
    else t = Math.max(t, st.mtimeMs);
  }
  return t;
}

function fresh(): boolean {
  if (!OUTPUTS.every((f) => existsSync(f))) return false;
  const built = Math.min(...OUTPUTS.map((f) => statSync(f).mtimeMs));
  const inputs = ["src", "demo", "tsup.config.ts", "package.json"].map((p) => join(WEB_IO, p));
  return newest([...inputs, SDK_DIST]) <= built;
}

/** Makes sure packages/web-io/dist is built from the current sources; throws with a clear message if it cannot be. */
export function ensureWebIoBuilt(): void {
  if (!existsSync(SDK_DIST)) throw new Error(`${SDK_DIST} is missing: run "bash scripts/setup.sh" (it builds the SDK the worker bundles)`);
  if (fresh()) return;
  const lock = join(WEB_IO, ".build.lock");
  const deadline = Date.now() + 120_000;
  let fd: number | undefined;
  while (fd === undefined) {
    try {
      fd = openSync(lock, "wx");
    } catch {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (delete it if no build is running)`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
  try {
    if (fresh()) return; // another process built it while we waited
    rmSync(join(WEB_IO, "dist"), { recursive: true, force: true });
    const tsup = join(ROOT, "node_modules/tsup/dist/cli-default.js");
    execFileSync(process.execPath, [tsup, "--silent"], { cwd: WEB_IO, stdio: ["ignore", "ignore", "pipe"] });
  } finally {
    closeSync(fd);
    rmSync(lock, { force: true });
  }
}
