// @flashllm/web-io in a real browser: Debian's headless Chromium driven by playwright-core, against the
// demo server on 127.0.0.1. The same greedy tokens as Node from OPFS, a picked File and HTTP Range; the
// memory budget held in WASM memory; clear errors (no Range, truncated file, abort, quota) after which
// the engine still works. The demo page has its own tests (demo.browser.test.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { MemorySource, openFlashModel } from "@flashllm/sdk";
import { ensureShippedModel, startDemoServer } from "../../packages/web-io/demo/server.mjs";
import type { DemoServer } from "../../packages/web-io/demo/server.mjs";
import { ensureWebIoBuilt } from "../../packages/web-io/test/build.js";
import { HERE, launchChromium, requireChromium } from "./chromium.js";

const PROMPT = "Once upon a time";
const N = 32; // generated tokens compared with Node's
const CONTEXT = 64;

let server: DemoServer;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let flmPath: string;
let flmBytes: number;
let budget: number;
let nodeTokens: number[];
let tmp: string;
const pageErrors: string[] = [];

interface PageError { name: string; code?: string; message: string; details?: Record<string, unknown> }
interface Generated {
  tokens: number[];
  peak: number;
  last?: { flash: { bytesRead: number; cacheHits: number; activeNeurons: number } };
  result?: { finishReason: string; generatedTokens: number };
  error?: PageError;
}
interface Loaded {
  info?: { fileBytes: number; wasmMemoryBytes: number; memoryPlan: { budget: number; overheadBytes: number; capacity: number } };
  error?: PageError;
  progress: { phase: string; loaded: number }[];
}
interface Imported {
  result?: { bytes: number; resumedFrom: number; alreadyComplete: boolean };
  error?: PageError;
  progress: { loaded: number; total?: number; resumedFrom?: number }[];
}

const t = {
  fresh: () => page.evaluate(() => (window as any).t.fresh()),
  load: (where: object, opts: object = { memoryBudget: budget, contextLength: CONTEXT }) =>
    page.evaluate(([w, o]) => (window as any).t.load(w, o), [where, opts] as const) as Promise<Loaded>,
  generate: (maxTokens = N, abortAfter?: number) =>
    page.evaluate(([n, a]) => (window as any).t.generate("Once upon a time", { temperature: 0, maxTokens: n }, a), [maxTokens, abortAfter] as const) as Promise<Generated>,
  importToOpfs: (from: string | object, name: string, opts: object = {}, abortMidway?: boolean) =>
    page.evaluate(([f, n, o, a]) => (window as any).t.importToOpfs(f, n, o, a), [from, name, opts, abortMidway] as const) as Promise<Imported>,
};

/** Loads, generates N greedy tokens, and checks them and the memory budget. */
async function expectGreedy(where: object, label: string): Promise<Generated> {
  const loaded = await t.load(where);
  expect(loaded.error, `${label}: load`).toBeUndefined();
  const info = loaded.info!;
  expect(info.fileBytes).toBe(flmBytes);
  expect(info.memoryPlan.capacity, "the cache cannot hold every neuron: evictions happen").toBeLessThan(5 * 172);
  const g = await t.generate();
  expect(g.error, `${label}: generate`).toBeUndefined();
  expect(g.tokens, `${label}: the same greedy tokens as Node`).toEqual(nodeTokens);
  // The budget is a hard promise: WASM memory ≤ budget + the runtime's stated overhead.
  expect(info.wasmMemoryBytes).toBeLessThanOrEqual(budget + info.memoryPlan.overheadBytes);
  expect(g.peak).toBeLessThanOrEqual(budget + info.memoryPlan.overheadBytes);
  expect(g.last!.flash.bytesRead).toBeGreaterThan(0);
  return g;
}

beforeAll(async () => {
  requireChromium();
  ensureWebIoBuilt();
  tmp = mkdtempSync(join(tmpdir(), "flashllm-browser-"));
  // big.flm: a sparse 1 GiB file, for the server that ignores Range (no disk space used).
  const bigPath = join(tmp, "big.flm");
  closeSync(openSync(bigPath, "w"));
  truncateSync(bigPath, 1 << 30);
  server = await startDemoServer({ port: 0, host: "127.0.0.1", slowMs: 15, models: { "stories260K.flm": await ensureShippedModel(), "big.flm": bigPath } });
  flmPath = server.models["stories260K.flm"];
  const flm = new Uint8Array(readFileSync(flmPath));
  flmBytes = flm.byteLength;
  budget = Math.floor(flmBytes * 0.85);
  writeFileSync(join(tmp, "truncated.flm"), flm.subarray(0, Math.floor(flmBytes / 2)));

  // The reference: the same model, prompt and greedy sampling in Node.
  const model = await openFlashModel(new MemorySource(flm), { contextLength: CONTEXT });
  nodeTokens = [];
  for await (const tok of model.generate(PROMPT, { temperature: 0, maxTokens: N })) nodeTokens.push(tok.token);
  await model.dispose();
  expect(nodeTokens).toHaveLength(N);

  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(server.url);
  await page.waitForFunction(() => (window as any).flashllmDemo !== undefined);
  await page.addScriptTag({ path: join(HERE, "page-helpers.js") });
  await t.fresh();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("web-io in headless Chromium", () => {
  it("HTTP Range: Node's greedy tokens, within the memory budget", async () => {
    const g = await expectGreedy({ url: `${server.url}models/stories260K.flm` }, "HTTP");
    expect(g.result?.finishReason).toBe("maxTokens");
    const ranges = server.log.filter((r) => r.path === "/models/stories260K.flm");
    expect(ranges.every((r) => r.status === 206 && r.range)).toBe(true);
  });

  it("a picked File: Node's greedy tokens, within the memory budget", async () => {
    await page.setInputFiles("#file", flmPath);
    await expectGreedy({ input: "#file" }, "File");
  });

  it("OPFS: import with progress, resumption after an abort, then Node's greedy tokens from OPFS", async () => {
    // From the slow server (paced body), so that the abort lands mid-import.
    const url = `${server.url}test/slow/stories260K.flm?slowMs=40`;
    const chunk = { chunkBytes: 128 * 1024 };
    const stopped = await t.importToOpfs(url, "stories260K.flm", chunk, true);
    expect(stopped.error?.code, JSON.stringify(stopped)).toBe("ABORTED");
    const done = await t.importToOpfs(url, "stories260K.flm", chunk);
    expect(done.error, JSON.stringify(done.error)).toBeUndefined();
    expect(done.result!.bytes).toBe(flmBytes);
    expect(done.result!.resumedFrom).toBeGreaterThan(0); // the aborted import's bytes were kept
    expect(done.progress.at(-1)).toMatchObject({ loaded: flmBytes, total: flmBytes });
    const again = await t.importToOpfs(url, "stories260K.flm", chunk);
    expect(again.result!.alreadyComplete).toBe(true);

    // A picked File imports too.
    await page.setInputFiles("#file", flmPath);
    const picked = await t.importToOpfs({ input: "#file" }, "models/picked.flm", chunk);
    expect(picked.result?.bytes).toBe(flmBytes);

    const storage = (await page.evaluate(() => (window as any).t.storage())) as { quota: number; usage: number; files: { name: string; complete: boolean }[] };
    expect(storage.quota).toBeGreaterThan(storage.usage);
    expect(storage.files).toContainEqual(expect.objectContaining({ name: "stories260K.flm", complete: true }));

    await expectGreedy({ opfs: "stories260K.flm" }, "OPFS");
    // Unmerged reads (every request on its own handle read) give the same tokens; the options reach the source.
    await expectGreedy({ spec: { kind: "opfs", name: "stories260K.flm", opfs: { mergeGapBytes: 0 } } }, "OPFS unmerged");
    const bad = await t.load({ spec: { kind: "opfs", name: "stories260K.flm", opfs: { mergeGapBytes: -1 } } });
    expect(bad.error?.message).toMatch(/mergeGapBytes must be ≥ 0, got -1/);
    // The refused open let go of the file: an import may write it again.
    expect((await t.importToOpfs(`${server.url}models/stories260K.flm`, "stories260K.flm")).error).toBeUndefined();
    await expectGreedy({ opfs: "models/picked.flm" }, "OPFS (imported File)");
  });

  it("an import that does not fit the origin's quota fails clearly", async () => {
    const cdp = await context.newCDPSession(page);
    const origin = new URL(server.url).origin;
    await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: 600_000 });
    try {
      const r = await t.importToOpfs(`${server.url}models/stories260K.flm`, "too-big.flm");
      expect(r.error?.name, JSON.stringify(r)).toBe("QuotaError");
      expect(r.error?.code).toBe("QUOTA_EXCEEDED");
      expect(r.error?.message).toMatch(/not enough browser storage for too-big\.flm: it needs 1\.02 MiB more/);
    } finally {
      await cdp.send("Storage.overrideQuotaForOrigin", { origin });
    }
  });

  it("a server without Range, a truncated file and aborts give clear errors; the engine works afterwards", async () => {
    // (Already there when the OPFS test ran; imported here too so this test also runs on its own.)
    expect((await t.importToOpfs(`${server.url}models/stories260K.flm`, "stories260K.flm")).error).toBeUndefined();
    const noRange = await t.load({ url: `${server.url}test/no-range/stories260K.flm` });
    expect(noRange.error?.code).toBe("READ_FAILED");
    expect(noRange.error?.message).toMatch(/ignored the Range request.*whole file.*needs a server that supports HTTP Range requests/);
    // With a 1 GiB file (sparse), the whole-file answer is cancelled, not downloaded.
    const big = await t.load({ url: `${server.url}test/no-range/big.flm` });
    expect(big.error?.message).toMatch(/ignored the Range request.*\(1\.00 GiB\)/);
    await new Promise((r) => setTimeout(r, 200));
    const entry = server.log.find((r) => r.path === "/test/no-range/big.flm")!;
    expect(entry.status).toBe(200);
    expect(entry.complete).toBe(false);
    expect(entry.sent).toBeLessThan(64 << 20);

    const truncHttp = await t.load({ url: `${server.url}test/truncated/stories260K.flm` });
    expect(truncHttp.error).toMatchObject({ name: "FormatError", code: "TRUNCATED" });
    await page.setInputFiles("#file", join(tmp, "truncated.flm"));
    const truncFile = await t.load({ input: "#file" });
    expect(truncFile.error).toMatchObject({ name: "FormatError", code: "TRUNCATED" });
    expect(truncFile.error?.message).toMatch(/truncated file/);

    // Abort while reads are in flight (a slow server), then generate again on the same model.
    expect((await t.load({ url: `${server.url}test/slow/stories260K.flm` })).error).toBeUndefined();
    const aborted = await t.generate(N, 3);
    expect(aborted.error).toMatchObject({ name: "AbortedError", code: "ABORTED" });
    expect(aborted.tokens.length).toBeLessThan(N);
    const after = await t.generate(5);
    expect(after.tokens).toEqual(nodeTokens.slice(0, 5));

    // Abort with a synchronous source (OPFS): the worker still hears it between tokens.
    expect((await t.load({ opfs: "stories260K.flm" }, { memoryBudget: budget, contextLength: 256 })).error).toBeUndefined();
    const abortedOpfs = await t.generate(250, 3);
    expect(abortedOpfs.error?.code).toBe("ABORTED");
    expect(abortedOpfs.tokens.length).toBeLessThan(250);

    // The engine (same worker) still loads and generates Node's tokens.
    await expectGreedy({ opfs: "stories260K.flm" }, "after errors");
    expect(pageErrors).toEqual([]);
  });

  it("an import reports progress at least every 1% or 256 KiB, from a URL and from a File", async () => {
    for (const [from, name] of [[`${server.url}models/stories260K.flm`, "progress-url.flm"], [{ input: "#file" }, "progress-file.flm"]] as const) {
      if (typeof from !== "string") await page.setInputFiles("#file", flmPath);
      const r = await t.importToOpfs(from, name);
      expect(r.error, JSON.stringify(r.error)).toBeUndefined();
      const loaded = r.progress.map((p) => p.loaded);
      expect(loaded[0]).toBe(0);
      expect(loaded.at(-1)).toBe(flmBytes);
      const step = Math.min(256 * 1024, Math.ceil(flmBytes / 100)); // 1% of 1.07 MB: 10.7 KB
      const gaps = loaded.slice(1).map((v, i) => v - loaded[i]);
      expect(Math.max(...gaps), `${name}: largest gap between reports`).toBeLessThanOrEqual(step);
      expect(gaps.every((g) => g >= 0)).toBe(true);
      expect(r.progress.every((p) => p.total === flmBytes)).toBe(true);
      await page.evaluate((n) => (window as any).t.client.removeFromOpfs(n), name);
    }
  });

  it("a server that refuses this origin (CORS) and a host that is down are named as such", async () => {
    // Same server, another origin: localhost vs 127.0.0.1. /test/no-cors/ sends no Access-Control-Allow-Origin.
    const cross = `http://localhost:${server.port}/test/no-cors/stories260K.flm`;
    const cors = await t.load({ url: cross });
    expect(cors.error?.code).toBe("READ_FAILED");
    expect(cors.error?.message).toMatch(new RegExp(`localhost:${server.port} answered, but does not allow pages from http://127\\.0\\.0\\.1:${server.port} to read .*CORS`));
    expect(cors.error?.message).not.toMatch(/gave up after/); // refused is refused: no retries
    // The same file with CORS headers loads: the probe is not what failed.
    expect((await t.load({ url: `http://localhost:${server.port}/test/range/stories260K.flm` })).error).toBeUndefined();
    // A port nothing listens on.
    const { createServer } = await import("node:net");
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const down = await t.load({ url: `http://127.0.0.1:${port}/model.flm` }, { memoryBudget: budget, contextLength: CONTEXT });
    expect(down.error?.message).toMatch(new RegExp(`cannot reach 127\\.0\\.0\\.1:${port}: the address is wrong, the server is not running, or the network is down`));
  });
});
