// The sharded engine in a browser tab and chat through the worker (issues 10 and 14), in Debian's
// headless Chromium: the engine's worker runs shard 0 itself and starts nested shard workers (dist/shard-worker.js; one per further
// thread, hosting the shards i with i mod threads its number), each shard with
// its own WASM memory and its own handle on the model. Checked against references computed here, in
// Node (one instance of the same model) and against run.c's greedy tokens in test/data: the same tokens
// with 2 workers through SharedArrayBuffer (cross-origin isolated) and through messages (not isolated),
// from HTTP, a File and OPFS; a shard whose reads fail ends the generation with a ShardError naming it;
// no shard worker outlives its model (counted by the browser itself, through the DevTools protocol);
// chat replies equal Node's `LanguageModel.chat`. The demo page's workers and chat controls are driven
// as a user would, with screenshots at 1280×800 and 390×844 in test/browser/artifacts/.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, CDPSession, Page } from "playwright-core";
import { MemorySink, MemorySource, convertLlama2c, openFlashModel, openFlm } from "@flashllm/sdk/internal";
import type { ChatMessage } from "@flashllm/sdk/internal";
import { ensureShippedModel, startDemoServer } from "../../packages/web-io/demo/server.mjs";
import type { DemoServer } from "../../packages/web-io/demo/server.mjs";
import { ensureWebIoBuilt } from "../../packages/web-io/test/build.js";
import { HERE, ARTIFACTS, DESKTOP, PHONE, launchChromium, requireChromium } from "./chromium.js";
import { LLAMA2_TEMPLATE } from "../chat-templates.js";
import { STORIES_BIN, STORIES_REF, STORIES_TOK, readBytes, readJson } from "../helpers.js";

const PROMPT = "Once upon a time";
const N = 32; // generated tokens compared with Node's
const CONTEXT = 64;
const PLAIN = "stories260K.flm";
const CHAT = "stories260K-chat.flm";
const CONVERSATION: ChatMessage[] = [
  { role: "system", content: "You tell short stories for children." },
  { role: "user", content: "Tell me about a cat and a dog." },
];

interface PageError { name: string; code?: string; message: string; details?: Record<string, unknown> }
interface Loaded {
  info?: {
    fileBytes: number;
    wasmMemoryBytes: number;
    hasChatTemplate: boolean;
    memoryPlan: { budget: number; overheadBytes: number };
    engine: { workers: number; transport?: string; why: string; memoryPerWorker: number[]; coordinatorBytes?: number };
  };
  error?: PageError;
}
interface Generated { tokens: number[]; text?: string; peak: number; error?: PageError; last?: { workerMemoryBytes: number[]; flash: { bytesRead: number } } }

let server: DemoServer;
let plainServer: DemoServer; // no COOP/COEP: the page is not cross-origin isolated
let browser: Browser;
let tmp: string;
let plainBytes: number;
let budget: number;
let nodeTokens: number[];
let nodeChat: { tokens: number[]; text: string };
/** Where the last FFN section starts, and its bundle size: shard 1 of 2 alone reads neurons 86… of it. */
let lastFfn: { offset: number; stride: number };
const pageErrors: string[] = [];

/** A page of `srv` with the helpers of page-helpers.js, and a DevTools session of its browser. */
async function openPage(srv: DemoServer, viewport = { width: 1000, height: 900 }): Promise<{ page: Page; context: BrowserContext; cdp: CDPSession }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(srv.url);
  await page.waitForSelector("body[data-ready=true]");
  await page.addScriptTag({ path: join(HERE, "page-helpers.js") });
  await page.evaluate(() => (window as any).t.fresh());
  return { page, context, cdp: await browser.newBrowserCDPSession() };
}

/** Shard workers alive in the browser, as its DevTools protocol lists them (independent of the engine's own count). */
async function shardWorkers(cdp: CDPSession): Promise<number> {
  const { targetInfos } = await cdp.send("Target.getTargets");
  return targetInfos.filter((t) => t.type === "worker" && /^flashllm-shards-\d+$/.test(t.title)).length;
}

const api = (page: Page) => ({
  load: (where: object, opts: object) => page.evaluate(([w, o]) => (window as any).t.load(w, o), [where, opts] as const) as Promise<Loaded>,
  generate: (maxTokens = N) =>
    page.evaluate((n) => (window as any).t.generate("Once upon a time", { temperature: 0, maxTokens: n }), maxTokens) as Promise<Generated>,
  chat: (messages: ChatMessage[], maxTokens: number) =>
    page.evaluate(([m, n]) => (window as any).t.chat(m, { temperature: 0, maxTokens: n }), [messages, maxTokens] as const) as Promise<Generated>,
  importToOpfs: (url: string, name: string) => page.evaluate(([u, n]) => (window as any).t.importToOpfs(u, n, {}), [url, name] as const) as Promise<{ error?: PageError }>,
  unload: () => page.evaluate(() => (window as any).t.client.unload()),
});

/** Loads with 2 workers, checks the engine's layout and budget, generates N greedy tokens and checks them. */
async function expectShardedGreedy(page: Page, cdp: CDPSession, where: object, transport: "shared" | "message", label: string): Promise<void> {
  const t = api(page);
  const loaded = await t.load(where, { memoryBudget: budget, contextLength: CONTEXT, workers: 2, threads: 2 });
  expect(loaded.error, `${label}: load`).toBeUndefined();
  const info = loaded.info!;
  expect(info.fileBytes).toBe(plainBytes);
  expect(info.engine).toMatchObject({ workers: 2, transport });
  expect(info.engine.memoryPerWorker).toHaveLength(2);
  expect(await shardWorkers(cdp), `${label}: shard workers running (shard 0 runs in the engine's worker)`).toBe(1);
  const g = await t.generate();
  expect(g.error, `${label}: generate`).toBeUndefined();
  expect(g.tokens, `${label}: Node's greedy tokens`).toEqual(nodeTokens);
  expect(g.last!.workerMemoryBytes).toHaveLength(2);
  expect(g.last!.flash.bytesRead).toBeGreaterThan(0);
  // The budget holds across the engine's worker and both shards: every WASM memory counted.
  expect(info.wasmMemoryBytes).toBe(info.engine.coordinatorBytes! + info.engine.memoryPerWorker[0] + info.engine.memoryPerWorker[1]);
  expect(g.peak).toBeLessThanOrEqual(budget + info.memoryPlan.overheadBytes);
}

beforeAll(async () => {
  requireChromium();
  ensureWebIoBuilt();
  tmp = mkdtempSync(join(tmpdir(), "flashllm-shards-browser-"));
  const plainPath = await ensureShippedModel();
  const plain = new Uint8Array(readFileSync(plainPath));
  plainBytes = plain.byteLength;
  budget = Math.floor(plainBytes * 0.85);
  // The shipped model has no chat template: a copy with Llama-2's, written here.
  const sink = new MemorySink();
  await convertLlama2c(readBytes(STORIES_BIN), readBytes(STORIES_TOK), sink, { chatTemplate: LLAMA2_TEMPLATE });
  const chatPath = join(tmp, CHAT);
  writeFileSync(chatPath, sink.bytes());
  const models = { [PLAIN]: plainPath, [CHAT]: chatPath };
  server = await startDemoServer({ port: 0, host: "127.0.0.1", models });
  plainServer = await startDemoServer({ port: 0, host: "127.0.0.1", coep: "none", models });

  // References: one instance in Node, and run.c's greedy tokens for the same prompt.
  const m = (await openFlm(new MemorySource(plain))).manifest;
  const last = m.sections.find((s) => s.name === `ffn.${m.config.nLayers - 1}`)!;
  lastFfn = { offset: last.offset, stride: m.ffn.bundleStride };
  const model = await openFlashModel(new MemorySource(plain), { contextLength: CONTEXT });
  nodeTokens = [];
  for await (const tok of model.generate(PROMPT, { temperature: 0, maxTokens: N })) nodeTokens.push(tok.token);
  await model.dispose();
  const runc = (readJson(`${STORIES_REF}/greedy.json`).cases as { prompt: string; prompt_tokens: number[]; tokens: number[] }[]).find((c) => c.prompt === PROMPT)!;
  expect(nodeTokens).toEqual(runc.tokens.slice(runc.prompt_tokens.length, runc.prompt_tokens.length + N));
  const chatModel = await openFlashModel(new MemorySource(sink.bytes()), { contextLength: 256 });
  nodeChat = { tokens: [], text: "" };
  for await (const tok of chatModel.chat(CONVERSATION, { temperature: 0, maxTokens: 24 })) {
    nodeChat.tokens.push(tok.token);
    nodeChat.text += tok.text;
  }
  await chatModel.dispose();
  expect(nodeChat.tokens.length).toBeGreaterThan(0);

  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await plainServer?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("the sharded engine in a tab", () => {
  it("cross-origin isolated, 2 workers through SharedArrayBuffer: Node's greedy tokens from HTTP, a File and OPFS; no shard worker outlives its model", async () => {
    const { page, context, cdp } = await openPage(server);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    const url = `${server.url}models/${PLAIN}`;
    await expectShardedGreedy(page, cdp, { url }, "shared", "HTTP");
    // An abort reaches both shards: AbortedError, then the same model gives Node's tokens again.
    const aborted = (await page.evaluate(() => (window as any).t.generate("Once upon a time", { temperature: 0, maxTokens: 32 }, 3))) as Generated;
    expect(aborted.error).toMatchObject({ name: "AbortedError", code: "ABORTED" });
    expect(aborted.tokens.length).toBeLessThan(N);
    expect((await api(page).generate(8)).tokens).toEqual(nodeTokens.slice(0, 8));
    // A picked File: each shard reads its own clone of the File object.
    await page.setInputFiles("#file", server.models[PLAIN]);
    await expectShardedGreedy(page, cdp, { input: "#file" }, "shared", "File");
    // OPFS: the engine's worker and both shards hold read-only sync access handles on one file at once.
    expect((await api(page).importToOpfs(url, PLAIN)).error).toBeUndefined();
    await expectShardedGreedy(page, cdp, { opfs: PLAIN }, "shared", "OPFS");
    await api(page).unload();
    await expect.poll(() => shardWorkers(cdp), { timeout: 10_000 }).toBe(0);
    // A load that replaces a sharded model ends its shards first; one worker starts none.
    await expectShardedGreedy(page, cdp, { url }, "shared", "HTTP again");
    const one = await api(page).load({ url }, { memoryBudget: budget, contextLength: CONTEXT, workers: 1 });
    expect(one.info?.engine).toMatchObject({ workers: 1, memoryPerWorker: [one.info!.wasmMemoryBytes] });
    await expect.poll(() => shardWorkers(cdp), { timeout: 10_000 }).toBe(0);
    expect((await api(page).generate()).tokens).toEqual(nodeTokens);
    // "auto" on a 1 MB model: one worker, and why (each shard would hold too little).
    const auto = await api(page).load({ url }, { contextLength: CONTEXT, workers: "auto" });
    expect(auto.info?.engine.workers).toBe(1);
    expect(auto.info?.engine.why).toMatch(/each worker would hold less than 64 MiB of this model|this device reports one core/);
    await context.close();
  }, 120_000);

  it("4 shards on 2 threads: one nested worker hosts shards 1 and 3, the engine's worker 0 and 2; Node's greedy tokens; nothing left after unload", async () => {
    const { page, context, cdp } = await openPage(server);
    const t = api(page);
    for (const transport of ["shared", "message"] as const) {
      const loaded = await t.load({ url: `${server.url}models/${PLAIN}` }, { memoryBudget: budget, contextLength: CONTEXT, workers: 4, threads: 2, transport });
      expect(loaded.error, transport).toBeUndefined();
      expect(loaded.info!.engine).toMatchObject({ workers: 4, transport });
      expect(loaded.info!.engine.memoryPerWorker).toHaveLength(4);
      expect(await shardWorkers(cdp), transport).toBe(1);
      const g = await t.generate();
      expect(g.error, transport).toBeUndefined();
      expect(g.tokens, `${transport}: Node's greedy tokens`).toEqual(nodeTokens);
      await t.unload();
      await expect.poll(() => shardWorkers(cdp), { timeout: 10_000 }).toBe(0);
    }
    await context.close();
  }, 120_000);

  it("OPFS in this Chromium: read-only sync access handles are shared by several holders; a read-only holder keeps writers out", async () => {
    const { page, context } = await openPage(server);
    expect((await api(page).importToOpfs(`${server.url}models/${PLAIN}`, "probe.flm")).error).toBeUndefined();
    // In a dedicated worker (sync handles exist only there): three read-only handles, then a writer.
    const facts = await page.evaluate(async () => {
      const code = `onmessage = async () => {
        const root = await navigator.storage.getDirectory();
        const fh = await root.getFileHandle("probe.flm");
        const out = {};
        const handles = [];
        try { for (let i = 0; i < 3; i++) handles.push(await fh.createSyncAccessHandle({ mode: "read-only" })); out.readOnlyHandles = handles.length; }
        catch (e) { out.readOnlyError = e.name; }
        const b = new Uint8Array(16);
        out.readBytes = handles.map((h) => h.read(b, { at: 0 }));
        try { (await fh.createSyncAccessHandle()).close(); out.exclusive = "opened"; } catch (e) { out.exclusive = e.name; }
        try { out.getFileBytes = (await fh.getFile()).size; } catch (e) { out.getFile = e.name; }
        for (const h of handles) h.close();
        const ex = await fh.createSyncAccessHandle();
        try { out.getFileWhileExclusive = (await (await fh.getFile()).slice(0, 16).arrayBuffer()).byteLength; } catch (e) { out.getFileWhileExclusive = e.name; }
        try { (await fh.createSyncAccessHandle({ mode: "read-only" })).close(); out.readOnlyWhileExclusive = "opened"; } catch (e) { out.readOnlyWhileExclusive = e.name; }
        ex.close();
        postMessage(out);
      };`;
      const w = new Worker(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
      const r = await new Promise((resolve) => {
        w.onmessage = (e) => resolve(e.data);
        w.postMessage(0);
      });
      w.terminate();
      return r;
    });
    console.log(`OPFS sync access handles in ${browser.version()}: ${JSON.stringify(facts)}`);
    expect(facts).toMatchObject({
      readOnlyHandles: 3, // the engine's worker and each shard may hold one on the same file
      readBytes: [16, 16, 16],
      exclusive: "NoModificationAllowedError", // an import cannot write a model being read
      getFileWhileExclusive: 16, // the File API reads past an exclusive handle: the shards' way on browsers without read-only handles
      readOnlyWhileExclusive: "NoModificationAllowedError",
    });
    await page.evaluate(() => (window as any).t.client.removeFromOpfs("probe.flm"));
    await context.close();
  });

  it("not cross-origin isolated, 2 workers through messages: Node's greedy tokens; auto keeps one worker and says why", async () => {
    const { page, context, cdp } = await openPage(plainServer);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(false);
    expect(await page.evaluate(() => typeof SharedArrayBuffer)).toBe("undefined");
    await expectShardedGreedy(page, cdp, { url: `${plainServer.url}models/${PLAIN}` }, "message", "HTTP, messages");
    const auto = await api(page).load({ url: `${plainServer.url}models/${PLAIN}` }, { contextLength: CONTEXT, workers: "auto" });
    expect(auto.info?.engine).toMatchObject({ workers: 1 });
    expect(auto.info?.engine.why).toMatch(/not cross-origin isolated \(no SharedArrayBuffer\); shard workers would have to exchange messages/);
    await expect.poll(() => shardWorkers(cdp), { timeout: 10_000 }).toBe(0);
    const forced = await api(page).load({ url: `${plainServer.url}models/${PLAIN}` }, { contextLength: CONTEXT, workers: 2, transport: "shared" });
    expect(forced.error).toMatchObject({ code: "BAD_ARGUMENT" });
    expect(forced.error?.message).toMatch(/transport "shared" needs SharedArrayBuffer.*cross-origin isolated/);
    await context.close();
  });

  it.each(["shared", "message"] as const)("a shard whose reads fail (%s): a ShardError naming shard 1, no shard worker left, the engine works on", async (transport) => {
    const srv = transport === "shared" ? server : plainServer;
    const { page, context, cdp } = await openPage(srv);
    const t = api(page);
    // Reads reaching neuron 100 of the last layer fail: neurons 86-171 of 172 are shard 1's alone.
    const from = lastFfn.offset + 100 * lastFfn.stride;
    const loaded = await t.load({ url: `${srv.url}test/bad-tail/${PLAIN}?from=${from}` }, { contextLength: CONTEXT, workers: 2 });
    expect(loaded.error).toBeUndefined();
    expect(loaded.info?.engine.transport).toBe(transport);
    const g = await t.generate();
    expect(g.error).toMatchObject({ name: "ShardError", code: "SHARD_FAILED", details: expect.objectContaining({ shard: 1 }) });
    expect(g.error?.message).toMatch(/^shard 1: SourceError \[READ_FAILED\]: .*HTTP 410/);
    // The model stays failed, and the client rebuilds the SDK's class: instanceof works in the page.
    expect(await page.evaluate(() => (window as any).t.client.generate("x").next().then(() => "no error", (e: Error) => e instanceof (window as any).flashllmDemo.ShardError))).toBe(true);
    await expect.poll(() => shardWorkers(cdp), { timeout: 10_000 }).toBe(0);
    // The same engine loads the model again and gives Node's tokens.
    await expectShardedGreedy(page, cdp, { url: `${srv.url}models/${PLAIN}` }, transport, "after a shard failure");
    await api(page).unload();
    await expect.poll(() => shardWorkers(cdp), { timeout: 10_000 }).toBe(0);
    await context.close();
  });

  it("a shard worker that cannot start (its script is missing): the load fails with a ShardError, no shard worker left", async () => {
    const { page, context, cdp } = await openPage(server);
    // An engine from bundles served without shard-worker.js beside worker.js.
    await page.evaluate((u) => {
      const w = window as any;
      w.t.client.terminate();
      w.t.client = w.flashllmDemo.FlashWorkerClient.create({ workerUrl: u });
    }, `${server.url}test/no-shard-worker/dist/worker.js`);
    const t = api(page);
    const failed = await t.load({ url: `${server.url}models/${PLAIN}` }, { contextLength: CONTEXT, workers: 2 });
    expect(failed.error).toMatchObject({ name: "ShardError", code: "SHARD_FAILED" });
    expect(failed.error?.message).toMatch(/^shard [01]: Error: worker ended: the shard worker failed to start \(is shard-worker\.js served beside worker\.js/);
    await expect.poll(() => shardWorkers(cdp), { timeout: 10_000 }).toBe(0);
    // One worker needs no shard script: the same engine loads and gives Node's tokens.
    expect((await t.load({ url: `${server.url}models/${PLAIN}` }, { contextLength: CONTEXT, workers: 1 })).error).toBeUndefined();
    expect((await t.generate()).tokens).toEqual(nodeTokens);
    await context.close();
    // The failed start reached the page as the load's error only, never as an unhandled rejection.
    expect(pageErrors).toEqual([]);
  });
});

describe("chat through the engine's worker", () => {
  it("a model with a chat template: Node's chat reply with 1 and 2 workers; a model without one: NO_CHAT_TEMPLATE", async () => {
    const { page, context } = await openPage(server);
    const t = api(page);
    for (const workers of [1, 2]) {
      const loaded = await t.load({ url: `${server.url}models/${CHAT}` }, { contextLength: 256, workers });
      expect(loaded.info).toMatchObject({ hasChatTemplate: true, engine: { workers } });
      const reply = await t.chat(CONVERSATION, 24);
      expect(reply.error, JSON.stringify(reply.error)).toBeUndefined();
      expect(reply.tokens, `${workers} worker(s)`).toEqual(nodeChat.tokens);
      expect(reply.text).toBe(nodeChat.text);
    }
    const plain = await t.load({ url: `${server.url}models/${PLAIN}` }, { contextLength: 256 });
    expect(plain.info?.hasChatTemplate).toBe(false);
    const refused = await t.chat(CONVERSATION, 8);
    expect(refused.error).toMatchObject({ code: "NO_CHAT_TEMPLATE" });
    // The model still generates after the refusal.
    expect((await t.generate(5)).tokens).toEqual(nodeTokens.slice(0, 5));
    await context.close();
  });
});

describe("the demo page: workers and chat", () => {
  it("2 workers chosen on the page: Node's text; section 5 shows 2 workers, shared memory and the memory of each (1280×800 and 390×844)", async () => {
    const model = await openFlashModel(new MemorySource(new Uint8Array(readFileSync(server.models[PLAIN]))), { contextLength: 128 });
    let text = PROMPT;
    for await (const tok of model.generate(PROMPT, { temperature: 0, maxTokens: N })) text += tok.text;
    await model.dispose();
    for (const [viewport, shot] of [[DESKTOP, "shards-1280.png"], [PHONE, "shards-390.png"]] as const) {
      const context = await browser.newContext({ viewport });
      const page = await context.newPage();
      page.on("pageerror", (e) => pageErrors.push(String(e)));
      await page.goto(server.url);
      await page.waitForSelector("body[data-ready=true]");
      await page.selectOption("#model", `server:${PLAIN}`);
      await page.uncheck("#opfs");
      await page.selectOption("#workers", "2");
      await page.fill("#max-tokens", String(N));
      await page.click("#generate");
      await page.waitForSelector("body[data-state=done], body[data-state=error]", { timeout: 60_000 });
      expect(await page.getAttribute("body", "data-state"), (await page.textContent("#error")) ?? "").toBe("done");
      expect(await page.textContent("#output")).toBe(text);
      expect(await page.textContent("#e-workers")).toBe("2");
      expect(await page.textContent("#e-transport")).toBe("shared memory (Atomics)");
      expect(await page.textContent("#e-mem")).toMatch(/^[\d.]+ KiB · [\d.]+ KiB$/);
      expect(await page.textContent("#e-choice")).toMatch(/^2 workers: the number asked for\. The engine's own worker holds [\d.]+ KiB/);
      // Nothing wider than the screen on a phone.
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(viewport.width);
      await page.$eval("#engine-section", (el) => el.scrollIntoView());
      await page.screenshot({ path: join(ARTIFACTS, shot), fullPage: viewport === PHONE });
      // The choice is remembered.
      await page.reload();
      await page.waitForSelector("body[data-ready=true]");
      expect(await page.inputValue("#workers")).toBe("2");
      await context.close();
    }
  }, 120_000);

  it("not isolated: section 5 says why auto falls back to one worker", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await context.newPage();
    await page.goto(plainServer.url);
    await page.waitForSelector("body[data-ready=true]");
    await page.selectOption("#model", `server:${PLAIN}`);
    await page.uncheck("#opfs");
    await page.selectOption("#workers", "auto");
    await page.click("#load");
    await page.waitForSelector("body[data-state=idle] #model-summary:not(:text('No model loaded.'))");
    expect(await page.textContent("#e-workers")).toBe("1");
    expect(await page.textContent("#e-choice")).toMatch(/^One worker: this page is not cross-origin isolated \(no SharedArrayBuffer\)/);
    expect(await page.textContent("#e-why")).toMatch(/Not isolated: .*“auto” falls back to one worker/);
    await context.close();
  });

  it.each([["1280", DESKTOP], ["390", PHONE]] as const)("chat mode at %s px: a model without a chat template says so and keeps completion; with one, two turns give Node's replies", async (suffix, viewport) => {
    const chatModel = await openFlashModel(new MemorySource(new Uint8Array(readFileSync(server.models[CHAT]))), { contextLength: 128 });
    const nodeReply = async (messages: ChatMessage[]) => {
      let text = "";
      for await (const tok of chatModel.chat(messages, { temperature: 0, maxTokens: 30 })) text += tok.text;
      return text;
    };
    const first = "Tell me about a cat.";
    const second = "What did the cat eat?";
    const reply1 = await nodeReply([{ role: "user", content: first }]);
    const reply2 = await nodeReply([{ role: "user", content: first }, { role: "assistant", content: reply1 }, { role: "user", content: second }]);
    await chatModel.dispose();

    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.goto(server.url);
    await page.waitForSelector("body[data-ready=true]");
    await page.uncheck("#opfs");
    await page.check("#unlimited"); // every neuron stays cached: few reads, a quick test
    await page.fill("#max-tokens", "30");
    // The shipped model has no template: the page says so and stays in completion mode.
    await page.selectOption("#model", `server:${PLAIN}`);
    await page.check("#mode-chat");
    await page.click("#load");
    await page.waitForSelector("body[data-state=idle] #model-summary:not(:text('No model loaded.'))");
    expect(await page.textContent("#chat-note")).toMatch(/This model has no chat template/);
    expect(await page.isDisabled("#mode-chat")).toBe(true);
    expect(await page.isChecked("#mode-complete")).toBe(true);
    expect(await page.textContent("#generate")).toBe("Generate");
    expect(await page.inputValue("#prompt")).toBe(PROMPT); // a prompt to continue, not the emptied message box
    await page.$eval("#gen-section", (el) => el.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, `chat-none-${suffix}.png`) });

    // A model with a template: chat, two turns.
    await page.selectOption("#model", `server:${CHAT}`);
    await page.click("#load");
    await page.waitForSelector("body[data-state=idle] #model-summary:not(:text('No model loaded.'))");
    expect(await page.isDisabled("#mode-chat")).toBe(false);
    await page.check("#mode-chat");
    expect(await page.textContent("#generate")).toBe("Send");
    expect(await page.textContent("#prompt-label")).toBe("Your message");
    for (const [message, reply] of [[first, reply1], [second, reply2]]) {
      await page.fill("#prompt", message);
      await page.click("#generate");
      await page.waitForSelector("body[data-state=done], body[data-state=error]", { timeout: 60_000 });
      expect(await page.getAttribute("body", "data-state"), (await page.textContent("#error")) ?? "").toBe("done");
      expect(await page.$$eval("#chat-log .turn.assistant .text", (els) => els.at(-1)?.textContent)).toBe(reply);
      expect(await page.inputValue("#prompt")).toBe("");
    }
    expect(await page.$$eval("#chat-log .turn", (els) => els.map((e) => e.className))).toEqual(["turn user", "turn assistant", "turn user", "turn assistant"]);
    // The run's figures are shown for chat as for completion.
    expect(await page.textContent("#f-tokens")).toMatch(/^\d+ \(\+ \d+ of prompt\)$/);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(viewport.width);
    await page.$eval("#gen-section", (el) => el.scrollIntoView());
    await page.screenshot({ path: join(ARTIFACTS, `chat-${suffix}.png`), fullPage: suffix === "390" });
    await page.click("#chat-reset");
    expect(await page.$$eval("#chat-log .turn", (els) => els.length)).toBe(0);
    await context.close();
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
