// `flashllm calibrate` as a user runs it (the built bundle): by default it stores the neurons in
// co-activation order and records that in the manifest; --no-reorder keeps the converted order. Both
// files generate the same greedy text with the same neurons; the reordered one reads them in fewer requests.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MemorySource, openFlm } from "@flashllm/sdk/internal";
import { ROOT, readBytes } from "./helpers.js";

const CLI = join(ROOT, "packages/node-io/dist/cli.js");
const dir = mkdtempSync(join(tmpdir(), "flashllm-calibrate-"));
const run = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8" });
const MODEL = `${ROOT}packages/node-io/models/stories260K-relu`;

describe("flashllm calibrate: co-activation order", () => {
  it("reorders by default, --no-reorder keeps the order; same text, fewer reads", async () => {
    const flm = join(dir, "relu.flm");
    expect(run(["convert", `${MODEL}/stories260K_relu.bin`, flm, "-z", `${MODEL}/tok512.bin`, "--activation", "relu"]).status).toBe(0);
    const common = ["--corpus", `${ROOT}test/data/tinystories_400k.txt`, "--positions", "2000", "--epochs", "2", "--rank", "16"];
    const ordered = run(["calibrate", flm, "-o", join(dir, "ordered.flm"), ...common]);
    expect(ordered.status, ordered.stderr).toBe(0);
    const runs = /falls into (.*) runs per layer/.exec(ordered.stdout);
    expect(runs, ordered.stdout).not.toBe(null);
    for (const pair of runs![1].split(", ")) {
      const [b, a] = pair.split("→").map(Number);
      expect(a).toBeLessThanOrEqual(b);
    }
    const plain = run(["calibrate", flm, "-o", join(dir, "plain.flm"), ...common, "--no-reorder"]);
    expect(plain.status, plain.stderr).toBe(0);
    expect(plain.stdout).not.toMatch(/co-activation order/);

    const record = async (name: string) => (await openFlm(new MemorySource(readBytes(join(dir, name))))).manifest.predictor!.calibration as Record<string, unknown>;
    expect((await record("ordered.flm")).neuronOrder).toMatchObject({ method: "coactivation-chain" });
    expect((await record("plain.flm")).neuronOrder).toBe("as converted");

    const gen = (name: string) => run(["run", "-m", join(dir, name), "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "100", "--memory-budget", "85%", "--max-gap", "1568"]);
    const a = gen("plain.flm");
    const b = gen("ordered.flm");
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    const reads = (s: string) => Number(/in ([\d.]+) reads/.exec(s)?.[1]);
    const used = (s: string) => /neurons used ([\d.]+)%/.exec(s)?.[1];
    expect(used(a.stderr), a.stderr).toBeDefined();
    expect(used(b.stderr)).toBe(used(a.stderr)); // the same neurons
    expect(reads(b.stderr)).toBeLessThan(0.95 * reads(a.stderr));
    console.log(`reads per token: ${reads(a.stderr)} as converted, ${reads(b.stderr)} in co-activation order`);
  }, 120_000);
});
