// The CLI launcher sizes libuv's thread pool before libuv creates it. Checked for real: a process
// blocks 6 pool threads on FIFO opens (open() of a FIFO waits for a writer), then asks for a stat;
// with the default 4 threads the stat cannot run, with the launcher's size it returns at once.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const bin = join(dirname(fileURLToPath(import.meta.url)), "..", "bin");
const { configureLibuv } = createRequire(import.meta.url)(join(bin, "libuv-settings.cjs")) as {
  configureLibuv: (env: Record<string, string | undefined>, argv: string[]) => Record<string, string | undefined>;
};

// Blocks 6 pool threads, then reports whether a 7th request still runs; unblocks them before exiting.
const probe = `
const fs = require("fs"), path = require("path"), os = require("os"), cp = require("child_process");
${"require(process.env.SETTINGS).configureLibuv(process.env, process.argv);"}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "uvpool-"));
const fifos = Array.from({ length: 6 }, (_, i) => path.join(dir, "f" + i));
for (const f of fifos) cp.execFileSync("mkfifo", [f]);
for (const f of fifos) fs.open(f, "r", () => {});
let answered = false;
const finish = (free) => {
  if (answered) return;
  answered = true;
  console.log(JSON.stringify({ free, size: process.env.UV_THREADPOOL_SIZE, uring: process.env.UV_USE_IO_URING }));
  for (const f of fifos) fs.closeSync(fs.openSync(f, "w"));
  setTimeout(() => { fs.rmSync(dir, { recursive: true }); process.exit(0); }, 50);
};
fs.stat(__filename === "[eval]" ? os.tmpdir() : __filename, () => finish(true));
setTimeout(() => finish(false), 1000);
`;

function runProbe(env: Record<string, string>): { free: boolean; size: string; uring: string } {
  const base = { ...process.env };
  delete base.UV_THREADPOOL_SIZE;
  delete base.UV_USE_IO_URING;
  const r = spawnSync(process.execPath, ["-e", probe], { env: { ...base, SETTINGS: join(bin, "libuv-settings.cjs"), ...env }, encoding: "utf8", timeout: 20000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

describe.skipIf(process.platform !== "linux")("flashllm launcher", () => {
  it("sizes libuv's thread pool before it exists: a 7th request runs while 6 threads are blocked", () => {
    // io_uring off here: with it, libuv may open and stat through the ring, not the pool.
    const out = runProbe({ UV_USE_IO_URING: "0" });
    expect(out).toEqual({ free: true, size: "64", uring: "0" });
  });

  it("a size the user sets wins (and 4 threads are then all blocked)", () => {
    const out = runProbe({ UV_THREADPOOL_SIZE: "4", UV_USE_IO_URING: "0" });
    expect(out).toEqual({ free: false, size: "4", uring: "0" });
  });

  it("sizes the pool for --in-flight, and turns io_uring on unless told otherwise", () => {
    expect(configureLibuv({}, ["node", "flashllm", "bench", "--in-flight", "200"])).toEqual({ UV_THREADPOOL_SIZE: "208", UV_USE_IO_URING: "1" });
    expect(configureLibuv({}, ["node", "flashllm", "run", "--in-flight", "8"]).UV_THREADPOOL_SIZE).toBe("64");
    expect(configureLibuv({}, ["node", "flashllm", "run", "--in-flight", "5000"]).UV_THREADPOOL_SIZE).toBe("1024");
  });
});
