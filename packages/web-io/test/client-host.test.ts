// FlashWorkerClient and the worker host talking over a MessageChannel in Node: the protocol, error
// classes across the boundary, abort, and serialised operations, without a browser.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { AbortedError, BudgetError, FormatError, MemorySink, MemorySource, convertLlama2c, openFlashModel, openFlm } from "@flashllm/sdk";
import { FlashWorkerClient } from "../src/client.js";
import { hostFlashWorker } from "../src/worker/host.js";
import type { WorkerScope } from "../src/worker/host.js";
import type { EngineStats } from "../src/protocol.js";
import { ensureShippedModel, startDemoServer } from "../demo/server.mjs";
import type { DemoServer } from "../demo/server.mjs";

const models = fileURLToPath(new URL("../../node-io/models/stories260K/", import.meta.url));
let flm: Uint8Array<ArrayBuffer>;
let ref: number[];
const prompt = "Once upon a time";
let open: MessagePort[] = [];
let server: DemoServer;

beforeAll(async () => {
  server = await startDemoServer({ port: 0, host: "127.0.0.1", slowMs: 5, models: { "stories260K.flm": await ensureShippedModel() } });
  const sink = new MemorySink();
  await convertLlama2c(new Uint8Array(readFileSync(`${models}stories260K.bin`)), new Uint8Array(readFileSync(`${models}tok512.bin`)), sink);
  flm = sink.bytes() as Uint8Array<ArrayBuffer>;
  const model = await openFlashModel(new MemorySource(flm), { contextLength: 64 });
  ref = [];
  for await (const t of model.generate(prompt, { temperature: 0, maxTokens: 30 })) ref.push(t.token);
  await model.dispose();
});

afterAll(() => server?.close());

afterEach(() => {
  for (const p of open) p.close();
  open = [];
});

function connect(): FlashWorkerClient {
  const { port1, port2 } = new MessageChannel();
  open.push(port1, port2);
  hostFlashWorker(port1 as unknown as WorkerScope);
  port1.start();
  port2.start();
  return new FlashWorkerClient(port2 as unknown as Worker);
}

describe("FlashWorkerClient ↔ host", () => {
  it("loads a Blob, streams greedy tokens with stats, reports lastStats", async () => {
    const client = connect();
    const progress: number[] = [];
    client.addEventListener("progress", (e) => progress.push((e as CustomEvent).detail.loaded));
    const budget = Math.floor(flm.byteLength * 0.85);
    const info = await client.load(new Blob([flm]), { memoryBudget: budget, contextLength: 64 });
    expect(info.fileBytes).toBe(flm.byteLength);
    expect(info.memoryPlan.budget).toBe(budget);
    expect(info.config.vocabSize).toBe(512);
    expect(progress.length).toBeGreaterThan(0);
    const tokens: number[] = [];
    let last: EngineStats | undefined;
    for await (const t of client.generate(prompt, { temperature: 0, maxTokens: 30 })) {
      tokens.push(t.token);
      last = t.stats;
    }
    expect(tokens).toEqual(ref);
    expect(last!.flash.tokens).toBeGreaterThan(30);
    expect(last!.peakWasmMemoryBytes).toBeLessThanOrEqual(budget + info.memoryPlan.overheadBytes);
    expect(client.lastStats?.generatedTokens).toBe(30);
    expect(client.lastStats?.finishReason).toBe("maxTokens");
    expect((await client.stats()).flash.bytesRead).toBeGreaterThan(0);
  });

  it("errors arrive as the SDK's classes with code and details", async () => {
    const client = connect();
    const err = await client.load(new Blob([flm]), { memoryBudget: 100_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(BudgetError);
    expect(err.code).toBe("BUDGET_TOO_SMALL");
    expect(err.details.minimum).toBeGreaterThan(100_000);
    const trunc = await client.load(new Blob([flm.subarray(0, 500_000)])).catch((e) => e);
    expect(trunc).toBeInstanceOf(FormatError);
    expect(trunc.code).toBe("TRUNCATED");
    const none = await (async () => {
      for await (const _ of client.generate(prompt)) void _;
    })().catch((e) => e);
    expect(none.message).toMatch(/no model is loaded/);
  });

  it("verifyReads crosses the worker boundary: a flipped bit in FFN data is CHECKSUM_MISMATCH, not text", async () => {
    const client = connect();
    const file = await openFlm(new MemorySource(flm));
    const s = file.section("ffn.2");
    const bad = flm.slice();
    bad[s.offset + Math.floor(s.length / 2)] ^= 0x10;
    await client.load(new Blob([bad]), { contextLength: 64, verifyReads: true });
    const err = await (async () => {
      for await (const _ of client.generate(prompt, { temperature: 0, maxTokens: 5 })) void _;
    })().catch((e) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.code).toBe("CHECKSUM_MISMATCH");
    expect(err.message).toMatch(/layer 2/);
  });

  it("abort mid-generation gives AbortedError; the next generation works and is serialised", async () => {
    const client = connect();
    // Client and host share one thread here: a slow server makes sure the abort lands mid-generation.
    await client.load(`${server.url}test/slow/stories260K.flm`, { contextLength: 64, memoryBudget: Math.floor(flm.byteLength * 0.6) });
    const c = new AbortController();
    const got: number[] = [];
    const err = await (async () => {
      for await (const t of client.generate(prompt, { temperature: 0, maxTokens: 50, signal: c.signal })) {
        got.push(t.token);
        if (got.length === 3) c.abort();
      }
    })().catch((e) => e);
    expect(err).toBeInstanceOf(AbortedError);
    expect(got.length).toBeLessThan(50);
    expect(client.lastStats).toBeUndefined();
    // Leaving a loop early stops that generation; the next one waits for it and runs normally.
    for await (const _ of client.generate(prompt, { temperature: 0, maxTokens: 40 })) break;
    const tokens: number[] = [];
    for await (const t of client.generate(prompt, { temperature: 0, maxTokens: 10 })) tokens.push(t.token);
    expect(tokens).toEqual(ref.slice(0, 10));
  });
});
