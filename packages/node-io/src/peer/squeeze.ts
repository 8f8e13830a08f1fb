import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";

/** MemAvailable of /proc/meminfo, bytes (what the kernel could give without swapping). */
export function memAvailable(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"));
  if (!m) throw new Error("cannot read MemAvailable from /proc/meminfo");
  return Number(m[1]) * 1024;
}

/** A helper process holding anonymous memory so that less memory is free than a model file. */
export interface Squeeze {
  /** Bytes it holds. */
  readonly heldBytes: number;
  /** MemAvailable once it holds them. */
  readonly availableBytes: number;
  /** Releases the memory (ends the process). */
  stop(): Promise<void>;
}

/** Never squeeze below this much available memory: with no swap the machine would start killing. */
export const SQUEEZE_FLOOR = 3.5 * 2 ** 30;

/**
 * Starts a process that allocates and touches anonymous memory in 256 MiB steps until MemAvailable
 * falls to `targetAvailable` (never below {@link SQUEEZE_FLOOR}), then holds it until `stop()`.
 * There is no swap here, so touched pages stay resident: the page cache is what gives way, as it
 * would on a machine whose RAM is busy with other programs. This is the "model does not fit in free
 * memory" condition of the peer benchmark, made repeatable.
 */
export async function startSqueeze(targetAvailable: number): Promise<Squeeze> {
  const target = Math.max(targetAvailable, SQUEEZE_FLOOR);
  const code = `
    const fs = require("fs");
    const avail = () => Number(/MemAvailable:\\s+(\\d+) kB/.exec(fs.readFileSync("/proc/meminfo","utf8"))[1]) * 1024;
    const held = [];
    const step = 256 * 1024 * 1024;
    while (avail() - step > ${target}) held.push(Buffer.alloc(step, 1));
    process.stdout.write(JSON.stringify({ held: held.length * step, available: avail() }) + "\\n");
    process.stdin.on("data", () => {});
    process.stdin.on("end", () => process.exit(0));
    setInterval(() => {}, 1 << 30);
  `;
  const p: ChildProcess = spawn(process.execPath, ["--max-old-space-size=256", "-e", code], { stdio: ["pipe", "pipe", "inherit"] });
  const first = await new Promise<string>((resolve, reject) => {
    let out = "";
    p.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("\n")) resolve(out);
    });
    p.on("exit", (c) => reject(new Error(`squeeze process exited early (${c})`)));
  });
  const { held, available } = JSON.parse(first) as { held: number; available: number };
  return {
    heldBytes: held,
    availableBytes: available,
    stop: () =>
      new Promise<void>((resolve) => {
        if (p.exitCode !== null) return resolve();
        p.on("exit", () => resolve());
        p.stdin!.end();
        setTimeout(() => p.kill("SIGKILL"), 5000).unref();
      }),
  };
}
