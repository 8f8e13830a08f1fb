import { describe, expect, it } from "vitest";
import { defaultWorkers, parseWorkers } from "../src/workers.js";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe("--workers auto", () => {
  it("the whole model in memory (no budget, or one that holds the file): one shard per core when each holds at least 64 MiB", () => {
    expect(defaultWorkers(1.2 * MiB, undefined, 2)).toBe(1); // stories260K: round trips would cost more than they save
    expect(defaultWorkers(100 * MiB, undefined, 4)).toBe(1); // 2 shards would hold 50 MiB each
    expect(defaultWorkers(200 * MiB, undefined, 4)).toBe(3); // 66.7 MiB each
    expect(defaultWorkers(805 * MiB, undefined, 2)).toBe(2);
    expect(defaultWorkers(805 * MiB, 805 * MiB, 8)).toBe(8);
    expect(defaultWorkers(6.29 * GiB, undefined, 2)).toBe(2); // 7B shape with no budget: memory needs 2 anyway
    expect(defaultWorkers(3.27 * GiB, 4 * GiB, 4)).toBe(4);
    expect(defaultWorkers(3.27 * GiB, undefined, 1)).toBe(1);
  });

  it("a budget below the file (reads): one instance when it fits one wasm32 memory, else as many shards as memory needs, even beyond the cores", () => {
    expect(defaultWorkers(805 * MiB, 402 * MiB, 2)).toBe(1);
    expect(defaultWorkers(6.29 * GiB, 3.14 * GiB, 2)).toBe(1); // Llama-2-7B shape at 50%
    expect(defaultWorkers(6.29 * GiB, 100 * MiB, 8)).toBe(1);
    expect(defaultWorkers(12.1 * GiB, 6.05 * GiB, 1)).toBe(2); // Llama-2-13B at 50% on one core (both shards on it)
    expect(defaultWorkers(30.3 * GiB, 15.15 * GiB, 2)).toBe(6); // the 33B shape at 50%: 5 for memory (3.75 GiB each at most), 6 to give both threads 3
    expect(defaultWorkers(30.3 * GiB, 15.15 * GiB, 8)).toBe(5); // fewer shards than cores: one thread each, as many as memory needs
    expect(defaultWorkers(12.1 * GiB, 9 * GiB, 2)).toBe(4); // 3 for memory, rounded up to 2 threads' multiple
    expect(defaultWorkers(30.3 * GiB, undefined, 16)).toBe(16);
  });

  it("parses an integer or auto, and refuses anything else", () => {
    expect(parseWorkers("3", GiB)).toBe(3);
    expect(parseWorkers(undefined, 805 * MiB, undefined, 2)).toBe(2);
    expect(parseWorkers(undefined, 805 * MiB, 402 * MiB, 2)).toBe(1);
    expect(parseWorkers("auto", 1.2 * MiB, undefined, 2)).toBe(1);
    expect(() => parseWorkers("0", GiB)).toThrow(/--workers must be an integer ≥ 1 or "auto", got 0/);
    expect(() => parseWorkers("two", GiB)).toThrow(/got two/);
  });
});
