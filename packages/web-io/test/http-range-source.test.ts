// HttpRangeSource against the demo server in Node (Node 20 has fetch): the same code the worker runs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { AbortedError, FormatError, MemorySource, SourceError, openFlashModel } from "@flashllm/sdk";
import type { FlashSource } from "@flashllm/sdk";
import { HttpRangeSource, parseContentRange } from "../src/http-range-source.js";
import { ensureShippedModel, startDemoServer } from "../demo/server.mjs";
import type { DemoServer } from "../demo/server.mjs";

let server: DemoServer;
let flm: Uint8Array;
const url = (path: string) => `${server.url}${path}`;
const fast = { retryDelayMs: 5 };

beforeAll(async () => {
  server = await startDemoServer({ port: 0, host: "127.0.0.1", slowMs: 30, models: { "stories260K.flm": await ensureShippedModel() } });
  flm = new Uint8Array(readFileSync(server.models["stories260K.flm"]));
});
afterAll(() => server?.close());

/** Byte equality (vitest's deep equality walks typed arrays element by element: slow for 250 KB). */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

async function greedy(source: FlashSource, n = 20, budget?: number): Promise<number[]> {
  const model = await openFlashModel(source, { memoryBudget: budget, contextLength: 64 });
  const out: number[] = [];
  for await (const t of model.generate("Once upon a time", { temperature: 0, maxTokens: n })) out.push(t.token);
  await model.dispose();
  return out;
}

describe("HttpRangeSource", () => {
  it("learns the size and validator at open, and fills targets exactly", async () => {
    const src = await HttpRangeSource.open(url("models/stories260K.flm"), fast);
    expect(src.byteLength).toBe(flm.byteLength);
    expect(src.validator).toMatch(/^"/);
    const a = new Uint8Array(1000);
    const b = new Uint8Array(70_000);
    const c = new Uint8Array(10);
    await src.read([
      { offset: 500_000, length: 1000, target: a },
      { offset: 100_000, length: 70_000, target: b },
      { offset: 20, length: 10, target: c }, // inside the bytes fetched at open: no request
    ]);
    expect(same(a, flm.subarray(500_000, 501_000))).toBe(true);
    expect(same(b, flm.subarray(100_000, 170_000))).toBe(true);
    expect(same(c, flm.subarray(20, 30))).toBe(true);
    expect(src.stats.headHits).toBe(1);
    expect(src.stats.requests).toBe(3); // probe + two ranges
    await src.close();
    await expect(src.read([{ offset: 0, length: 1, target: new Uint8Array(1) }])).rejects.toThrow(/closed/);
  });

  it("merges requests with small gaps into one range and splits long ones", async () => {
    const src = await HttpRangeSource.open(url("models/stories260K.flm"), { ...fast, mergeGapBytes: 4096, maxRequestBytes: 100_000 });
    const before = src.stats.requests;
    const t = [new Uint8Array(1000), new Uint8Array(1000), new Uint8Array(250_000)];
    await src.read([
      { offset: 200_000, length: 1000, target: t[0] },
      { offset: 203_000, length: 1000, target: t[1] }, // 2000-byte gap: merged
      { offset: 400_000, length: 250_000, target: t[2] }, // split in three
    ]);
    expect(src.stats.requests - before).toBe(4);
    expect(same(t[0], flm.subarray(200_000, 201_000))).toBe(true);
    expect(same(t[1], flm.subarray(203_000, 204_000))).toBe(true);
    expect(same(t[2], flm.subarray(400_000, 650_000))).toBe(true);
  });

  it("serves the engine: greedy tokens equal those from memory, under a budget", async () => {
    const budget = Math.floor(flm.byteLength * 0.85);
    const ref = await greedy(new MemorySource(flm), 20, budget);
    expect(await greedy(await HttpRangeSource.open(url("models/stories260K.flm"), fast), 20, budget)).toEqual(ref);
  });

  it("a server that ignores Range is a clear error, and the body is not downloaded", async () => {
    const err = await HttpRangeSource.open(url("test/no-range/stories260K.flm"), fast).catch((e) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect(err.code).toBe("READ_FAILED");
    expect(err.message).toMatch(/ignored the Range request.*200.*whole file.*needs a server that supports HTTP Range/);
    await new Promise((r) => setTimeout(r, 100)); // let the server notice the closed connection
    const entry = server.log.find((r) => r.mode === "no-range")!;
    expect(entry.complete).toBe(false);
    expect(entry.sent).toBeLessThan(flm.byteLength);
  });

  it("a truncated file fails at open with TRUNCATED", async () => {
    const src = await HttpRangeSource.open(url("test/truncated/stories260K.flm"), fast);
    expect(src.byteLength).toBe(Math.floor(flm.byteLength / 2));
    const err = await openFlashModel(src, { contextLength: 64 }).catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.code).toBe("TRUNCATED");
  });

  it("retries 5xx answers and cut-off bodies", async () => {
    const ref = await greedy(new MemorySource(flm), 8);
    for (const mode of ["flaky", "cut"]) {
      const src = await HttpRangeSource.open(url(`test/${mode}/stories260K.flm`), fast);
      expect(await greedy(src, 8), mode).toEqual(ref);
      expect(src.stats.retries, mode).toBeGreaterThan(0);
    }
  });

  it("gives up after the retries with the last cause", async () => {
    const fetch503: typeof fetch = async (input, init) => {
      const h = new Headers(init?.headers);
      if (h.get("range") === "bytes=0-65535") return globalThis.fetch(input, init);
      return new Response("busy", { status: 503, statusText: "Service Unavailable" });
    };
    const src = await HttpRangeSource.open(url("models/stories260K.flm"), { ...fast, retries: 2, fetch: fetch503 });
    const err = await src.read([{ offset: 500_000, length: 100, target: new Uint8Array(100) }]).catch((e) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect(err.message).toMatch(/HTTP 503.*gave up after 3 attempts/);
    expect(src.stats.retries).toBe(2);
  });

  it("a file that changes on the server (new ETag) is a clear error", async () => {
    const src = await HttpRangeSource.open(url("test/changing/stories260K.flm"), fast);
    await src.read([{ offset: 100_000, length: 10, target: new Uint8Array(10) }]); // second request: same ETag
    const err = await src.read([{ offset: 200_000, length: 10, target: new Uint8Array(10) }]).catch((e) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect(err.message).toMatch(/changed on the server since it was opened/);
  });

  it("the AbortSignal cancels requests in flight", async () => {
    // The server holds this read's answer for 5 s: if the abort did not cancel it, the read would succeed.
    const held: typeof fetch = (u, init) => {
      const range = new Headers(init?.headers).get("range") ?? "";
      return fetch(range.startsWith("bytes=300000-") ? `${u}?slowMs=5000` : u, init);
    };
    const src = await HttpRangeSource.open(url("test/slow/stories260K.flm"), { ...fast, fetch: held });
    const c = new AbortController();
    const target = new Uint8Array(1000);
    const p = src.read([{ offset: 300_000, length: 1000, target }], c.signal);
    // Abort once the request has reached the server (it is in flight, held there).
    while (!server.log.some((r) => r.range === "bytes=300000-300999")) await new Promise((r) => setTimeout(r, 5));
    c.abort();
    await expect(p).rejects.toBeInstanceOf(AbortedError);
    expect(target.every((v) => v === 0)).toBe(true); // nothing written after the abort
  });

  it("missing files and bad requests", async () => {
    await expect(HttpRangeSource.open(url("models/nope.flm"), fast)).rejects.toThrow(/not found.*404/);
    const src = await HttpRangeSource.open(url("models/stories260K.flm"), fast);
    await expect(src.read([{ offset: flm.byteLength - 5, length: 10, target: new Uint8Array(10) }])).rejects.toThrow(/outside/);
  });

  it("parses Content-Range", () => {
    expect(parseContentRange("bytes 0-99/1000")).toEqual({ start: 0, end: 100, total: 1000 });
    expect(parseContentRange("bytes 5-9/*")).toEqual({ start: 5, end: 10, total: undefined });
    expect(parseContentRange("bytes */1000")).toBeUndefined();
    expect(parseContentRange(null)).toBeUndefined();
  });
});
