// How many workers a load runs with: "auto" against cores, model size, one wasm32 memory per worker and
// cross-origin isolation; explicit counts; the transport.
import { describe, expect, it } from "vitest";
import { MIN_SHARD_BYTES, ONE_INSTANCE_BYTES, chooseWorkers } from "../src/choose-workers.js";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const isolated8 = { cores: 8, isolated: true };

describe("chooseWorkers", () => {
  it("auto, isolated: one per core when each holds at least MIN_SHARD_BYTES, fewer for small models, one for a tiny one", () => {
    expect(chooseWorkers("auto", isolated8, 7 * GiB, 3.5 * GiB)).toMatchObject({ workers: 8, transport: "shared", why: "one per core (8)" });
    expect(chooseWorkers("auto", isolated8, 300 * MiB)).toMatchObject({ workers: Math.floor((300 * MiB) / MIN_SHARD_BYTES), transport: "shared" }); // 4
    const tiny = chooseWorkers("auto", isolated8, 1 * MiB);
    expect(tiny).toEqual({ workers: 1, why: "split over 8 cores, each worker would hold less than 64 MiB of this model, too little to pay for the round trips between workers" });
    // The budget, not the file, is what the workers hold.
    expect(chooseWorkers("auto", isolated8, 7 * GiB, 100 * MiB).workers).toBe(1);
    expect(chooseWorkers("auto", { cores: 1, isolated: true }, 7 * GiB, 2 * GiB)).toEqual({ workers: 1, why: "this device reports one core" });
  });

  it("auto: a model larger than one wasm32 memory gets enough workers for it, beyond the cores rounded up to a multiple of them, with or without isolation", () => {
    const need = 3 * ONE_INSTANCE_BYTES + 1;
    expect(chooseWorkers("auto", { cores: 2, isolated: true }, 20 * GiB, need)).toMatchObject({ workers: 4, transport: "shared" });
    expect(chooseWorkers("auto", { cores: 2, isolated: false }, 20 * GiB, need)).toMatchObject({ workers: 4, transport: "message" });
    const five = 4 * ONE_INSTANCE_BYTES + 1; // 5 for memory: 6 on 2 cores (3 per thread); on 8 cores one per core
    expect(chooseWorkers("auto", { cores: 2, isolated: true }, 40 * GiB, five).workers).toBe(6);
    expect(chooseWorkers("auto", { cores: 2, isolated: false }, 40 * GiB, five).workers).toBe(6);
    expect(chooseWorkers("auto", isolated8, 40 * GiB, five).workers).toBe(8); // one per core, each ≥ 64 MiB
  });

  it("auto without isolation: one worker for a model that fits one memory, and why", () => {
    expect(chooseWorkers("auto", { cores: 8, isolated: false }, 7 * GiB, 3 * GiB)).toEqual({
      workers: 1,
      why: "this page is not cross-origin isolated (no SharedArrayBuffer); shard workers would have to exchange messages, which costs more than they save",
    });
  });

  it("a number is taken as it is; without isolation the shards use messages; a shared transport needs isolation", () => {
    expect(chooseWorkers(2, { cores: 1, isolated: true }, MiB)).toEqual({ workers: 2, transport: "shared", why: "the number asked for" });
    expect(chooseWorkers(2, { cores: 8, isolated: false }, MiB)).toMatchObject({ workers: 2, transport: "message", why: expect.stringMatching(/not cross-origin isolated, so they exchange messages/) });
    expect(chooseWorkers(3, isolated8, MiB, undefined, "message")).toEqual({ workers: 3, transport: "message", why: "the number asked for" });
    expect(chooseWorkers(undefined, isolated8, 7 * GiB)).toEqual({ workers: 1, why: "the default" });
    expect(() => chooseWorkers(2, { cores: 8, isolated: false }, MiB, undefined, "shared")).toThrow(/transport "shared" needs SharedArrayBuffer/);
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => chooseWorkers(bad, isolated8, MiB)).toThrow(/workers must be an integer ≥ 1 or "auto"/);
  });
});
