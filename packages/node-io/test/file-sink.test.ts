// NodeFileSink when several writers target one path at once (concurrent first-use conversions): each
// writes its own temp file, every commit succeeds, the result is one writer's complete bytes, and no
// temp file is left behind.
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NodeFileSink } from "../src/file-sink.js";

describe("NodeFileSink", () => {
  it("two sinks on the same path, interleaved, both commit; the file is whole; no temp files remain", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flashllm-sink-"));
    const path = join(dir, "m.flm");
    const a = await NodeFileSink.create(path);
    const b = await NodeFileSink.create(path);
    const bytesA = new Uint8Array(4096).fill(0xaa);
    const bytesB = new Uint8Array(4096).fill(0xbb);
    await a.write(0, bytesA.subarray(0, 2048));
    await b.write(0, bytesB.subarray(0, 2048));
    await a.write(2048, bytesA.subarray(2048));
    await b.write(2048, bytesB.subarray(2048));
    await a.commit();
    await b.commit();
    const got = new Uint8Array(readFileSync(path));
    expect(got.length).toBe(4096);
    expect(got.every((v) => v === 0xbb)).toBe(true); // the last rename wins, whole
    expect(readdirSync(dir)).toEqual(["m.flm"]);
  });

  it("abort removes only its own temp file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "flashllm-sink-"));
    const path = join(dir, "m.flm");
    const a = await NodeFileSink.create(path);
    const b = await NodeFileSink.create(path);
    await a.write(0, new Uint8Array(16).fill(1));
    await b.write(0, new Uint8Array(16).fill(2));
    await a.abort();
    await b.commit();
    expect([...readFileSync(path)]).toEqual(new Array(16).fill(2));
    expect(readdirSync(dir)).toEqual(["m.flm"]);
  });
});
