// The demo page as a new user meets it, in Debian's headless Chromium at 1280×800 and 390×844 (issue 14):
// the defaults (sparse model with predictors, a budget where the cache works, the OPFS copy) give Node's
// text with run totals on the page; copy progress shows percent, speed and time left; errors appear in
// view, in words, and clear the last run; models kept in OPFS are listed, sized and deleted; the copy
// choice survives a reload; sampling settings reach the engine; the phone layout does not overflow; the
// page is cross-origin isolated, or says why not. Screenshots go to test/browser/artifacts/.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { MemorySource, openFlashModel, openFlm } from "@flashllm/sdk";
import { startDemoServer } from "../../packages/web-io/demo/server.mjs";
import type { DemoServer } from "../../packages/web-io/demo/server.mjs";
import { ensureWebIoBuilt } from "../../packages/web-io/test/build.js";
import { ARTIFACTS, DESKTOP, PHONE, launchChromium, requireChromium } from "./chromium.js";

const SPARSE = "stories260K-relu-pred.flm";
const PROMPT = "Once upon a time";

let server: DemoServer;
let browser: Browser;
let sparseBytes: number;
/** Bytes of every FFN bundle of every layer: what a token reads when every neuron is needed. */
let denseFfnPerToken: number;
/** Node's text for the page's defaults: greedy, 100 tokens, context 128 (the budget does not change tokens). */
let nodeGreedy: string;
/** Node's text with temperature 0.8, top-p 0.9, seed 42, 40 tokens. */
let nodeSampled: string;
const pageErrors: string[] = [];

async function nodeText(flm: Uint8Array, opts: { maxTokens: number; temperature: number; topP?: number; seed?: number }): Promise<string> {
  const model = await openFlashModel(new MemorySource(flm), { contextLength: 128 });
  let text = PROMPT;
  for await (const t of model.generate(PROMPT, opts)) text += t.text;
  await model.dispose();
  return text;
}

async function open(viewport: { width: number; height: number }, ctx?: BrowserContext): Promise<Page> {
  const context = ctx ?? (await browser.newContext({ viewport }));
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  await page.goto(server.url);
  await page.waitForSelector("body[data-ready=true]");
  return page;
}

async function generate(page: Page): Promise<void> {
  await page.click("#generate");
  await page.waitForSelector("body[data-state=done], body[data-state=error]", { timeout: 90_000 });
  expect(await page.getAttribute("body", "data-state"), (await page.textContent("#error")) ?? "").toBe("done");
}

/** The element's box lies inside the viewport (what the user is looking at without scrolling). */
async function inViewport(page: Page, selector: string): Promise<boolean> {
  return page.$eval(selector, (el) => {
    const r = el.getBoundingClientRect();
    return r.height > 0 && r.top >= -1 && r.bottom <= innerHeight + 1 && r.left >= 0 && r.right <= innerWidth; // ±1 px: scrolling aligns to fractions
  });
}

const figures = (page: Page) =>
  page.$$eval("#figures dd", (dds) => Object.fromEntries(dds.map((d) => [d.id, d.textContent ?? ""]))) as Promise<Record<string, string>>;

/** "250.2 KiB" → bytes (the SDK's formatBytes: binary units). */
function bytesOf(s: string): number {
  const m = /^([\d.]+) (B|bytes|KiB|MiB|GiB)$/.exec(s.trim());
  if (!m) throw new Error(`not a size: ${s}`);
  return Number(m[1]) * { B: 1, bytes: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30 }[m[2] as "KiB"];
}

beforeAll(async () => {
  requireChromium();
  ensureWebIoBuilt();
  server = await startDemoServer({ port: 0, host: "127.0.0.1", slowMs: 20 }); // the shipped models (calibrates once)
  const sparse = new Uint8Array(readFileSync(server.models[SPARSE]));
  sparseBytes = sparse.byteLength;
  const m = (await openFlm(new MemorySource(sparse))).manifest;
  denseFfnPerToken = m.config.nLayers * m.config.hiddenDim * m.ffn.bundleStride;
  nodeGreedy = await nodeText(sparse, { maxTokens: 100, temperature: 0 });
  nodeSampled = await nodeText(sparse, { maxTokens: 40, temperature: 0.8, topP: 0.9, seed: 42 });
  browser = await launchChromium();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe("the demo page", () => {
  it("defaults: the sparse model with predictors, copied to OPFS, a budget below its size; Node's text and the run's totals", async () => {
    const page = await open(DESKTOP);
    expect(await page.$eval("#model", (s) => (s as HTMLSelectElement).value)).toBe(`server:${SPARSE}`);
    expect(await page.isChecked("#opfs")).toBe(true);
    const budget = Number(await page.inputValue("#budget")) * 1e6;
    expect(budget).toBeLessThan(sparseBytes); // the model does not fit: the point of the method
    await generate(page);
    expect(await page.textContent("#output")).toBe(nodeGreedy);
    expect(await page.textContent("#model-summary")).toMatch(new RegExp(`Loaded ${SPARSE} from this browser's storage`));
    const f = await figures(page);
    expect(f["f-tokens"]).toMatch(/^100 \(\+ \d+ of prompt\)$/);
    const hits = Number(/^(\d+)%$/.exec(f["f-hits"])![1]);
    const perToken = bytesOf(f["f-bytes"]);
    const total = bytesOf(f["f-total"]);
    console.log(`demo defaults: ${f["f-tps"]} tokens/s, ${f["f-total"]} read, ${f["f-bytes"]} per token, hit rate ${f["f-hits"]}, time ${f["f-time"]}`);
    expect(hits).toBeGreaterThanOrEqual(30); // the cache works (the SwiGLU model at 0.9 MB: 2%)
    expect(perToken).toBeLessThan(0.5 * denseFfnPerToken);
    expect(total / perToken).toBeGreaterThan(100); // total over the run's forward passes
    // One tokens-per-second figure on the page, not two that disagree.
    const text = await page.textContent("main");
    expect(text!.match(/tokens?\s*(\/|per)\s*s(econd)?/gi)).toHaveLength(1);
    expect(f["f-tps"]).toMatch(/^\d+(\.\d)?$/);
    await page.screenshot({ path: join(ARTIFACTS, "demo-1280.png"), fullPage: true });

    // The stored copy is listed with its size, and is now in the picker.
    await page.waitForSelector(`#stored tr[data-name="${SPARSE}"]`);
    expect(await page.textContent(`#stored tr[data-name="${SPARSE}"]`)).toMatch(/1\.1\d MiB/);
    expect(await page.$$eval("#model option", (os) => os.map((o) => (o as HTMLOptionElement).value))).toContain(`opfs:${SPARSE}`);
    expect(await page.textContent("#quota")).toMatch(/This site uses [\d.]+ (KiB|MiB) of the [\d.]+ (MiB|GiB|TiB) the browser allows it/);
    expect(await page.textContent("#persist-status")).toMatch(/The browser (keeps|may delete|did not promise)/);
    await page.context().close();
  });

  it("copy progress: bytes, percent, speed and time left, updated at least every 1%", async () => {
    const page = await open(DESKTOP);
    await page.selectOption("#model", "url");
    await page.fill("#url", `${server.url}test/slow/${SPARSE}?slowMs=25`); // 64 KiB every 25 ms: a copy of ~0.5 s
    await page.check("#opfs");
    const seen = new Set<string>();
    const watch = setInterval(() => void page.textContent("#progress-text").then((t) => t && seen.add(t), () => {}), 20);
    await page.click("#load");
    await page.waitForFunction(() => /Copying .* of 1\.1\d MiB \(\d+%\) · [\d.]+ (KiB|MiB)\/s · \d+ s left/.test(document.getElementById("progress-text")!.textContent ?? ""), undefined, { timeout: 30_000, polling: 10 });
    await page.waitForSelector("body[data-state=idle]", { timeout: 60_000 });
    clearInterval(watch);
    const percents = [...seen].map((t) => /\((\d+)%\)/.exec(t)?.[1]).filter(Boolean);
    expect(new Set(percents).size, [...seen].join("\n")).toBeGreaterThan(5); // not "0 of 1.14 MiB" until done
    expect(await page.textContent("#activity")).toMatch(/Ready: reading from this browser's storage/);
    await page.context().close();
  });

  it("a bad address: the error is in view, in words, and the last run's story and figures are gone", async () => {
    const page = await open(DESKTOP);
    await page.uncheck("#opfs");
    await generate(page); // over HTTP: a run to be cleared
    expect((await figures(page))["f-total"]).not.toBe("–");
    // After a run over the network the page offers the local copy, with what the network cost.
    expect(await page.isVisible("#suggest")).toBe(true);
    expect(await page.textContent("#suggest-text")).toMatch(/This run read [\d.]+ (KiB|MiB) over the network, and \d+% of each token's time went to waiting for it/);
    await page.click("#suggest-copy");
    await page.waitForSelector("body[data-state=idle]");
    expect(await page.textContent("#model-summary")).toMatch(/from this browser's storage/);
    expect(await page.isChecked("#opfs")).toBe(true);
    await generate(page); // from OPFS now: a run to be cleared
    await page.selectOption("#model", "url");
    await page.fill("#url", `${server.url}models/nope.flm`);
    // A copy that fails leaves the loaded model loaded (and says so); its run's story and figures go.
    await page.click("#load");
    await page.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
    expect(await page.textContent("#error")).toMatch(/There is no model at that address/);
    expect(await page.textContent("#model-summary")).toMatch(/^Loaded stories260K-relu-pred\.flm from this browser's storage/);
    expect(await page.textContent("#output")).toBe("");
    // Read straight from the address: the load fails, and nothing is loaded any more.
    await page.uncheck("#opfs");
    await page.click("#load");
    await page.waitForSelector("#error:not([hidden])", { timeout: 30_000 });
    expect(await inViewport(page, "#error")).toBe(true);
    expect(await page.textContent("#error")).toMatch(/There is no model at that address \(the server answered 404 Not Found\)/);
    expect(await page.textContent("#output")).toBe("");
    expect(Object.values(await figures(page)).filter((v) => v !== "–")).toEqual([]);
    expect(await page.textContent("#model-summary")).toBe("No model loaded.");
    await page.screenshot({ path: join(ARTIFACTS, "demo-error-1280.png") });

    // Pressing Generate puts the error beside Generate.
    await page.fill("#url", `http://localhost:${server.port}/test/no-cors/${SPARSE}`);
    await page.focus("#prompt");
    await page.keyboard.press("Control+Enter");
    await page.waitForSelector("#gen-section #error:not([hidden])", { timeout: 30_000 });
    expect(await inViewport(page, "#error")).toBe(true);
    expect(await page.textContent("#error")).toMatch(/does not allow pages from .* \(a cross-origin request blocked by CORS\)/);
    await page.context().close();
  });

  it("storage manager: delete a stored model (unloading it), and the copy choice survives a reload", async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    const page = await open(DESKTOP, context);
    await generate(page); // defaults: copies into OPFS and loads from there
    // "Load" on a stored model picks it in the model list and loads it from OPFS.
    await page.selectOption("#model", `server:stories260K.flm`);
    await page.click(`#stored tr[data-name="${SPARSE}"] button:text("Load")`);
    await page.waitForSelector("body[data-state=idle]");
    expect(await page.$eval("#model", (s) => (s as HTMLSelectElement).value)).toBe(`opfs:${SPARSE}`);
    expect(await page.textContent("#model-summary")).toMatch(new RegExp(`^Loaded ${SPARSE} from this browser's storage`));
    await page.click(`#stored tr[data-name="${SPARSE}"] button:text("Delete")`);
    await page.waitForSelector(`#stored tr[data-name="${SPARSE}"]`, { state: "detached" });
    expect(await page.textContent("#model-summary")).toBe("No model loaded.");
    expect(await page.$$eval("#model option", (os) => os.map((o) => (o as HTMLOptionElement).value))).not.toContain(`opfs:${SPARSE}`);
    const files = await page.evaluate(() => (window as any).flashllmDemo.engine.storage().then((s: { files: { name: string }[] }) => s.files.map((f) => f.name)));
    expect(files).not.toContain(SPARSE);
    expect(await page.isVisible("#stored-empty")).toBe(true);

    await page.uncheck("#opfs");
    await page.reload();
    await page.waitForSelector("body[data-ready=true]");
    expect(await page.isChecked("#opfs")).toBe(false);
    await context.close();
  });

  it("sampling settings reach the engine: temperature, top-p and seed give Node's text, twice", async () => {
    const page = await open(DESKTOP);
    await page.uncheck("#opfs");
    await page.fill("#max-tokens", "40");
    await page.fill("#temperature", "0.8");
    await page.fill("#top-p", "0.9");
    await page.fill("#seed", "42");
    await generate(page);
    expect(await page.textContent("#output")).toBe(nodeSampled);
    await generate(page);
    expect(await page.textContent("#output")).toBe(nodeSampled);
    await page.context().close();
  });

  it("phone (390×844): nothing wider than the screen, 16 px inputs, checkboxes beside their labels; a run and an error", async () => {
    const page = await open(PHONE);
    await generate(page);
    const layout = await page.evaluate(() => {
      const wide = Array.from(document.querySelectorAll("body *"))
        .filter((el) => (el as HTMLElement).offsetParent !== null || el.tagName === "BODY")
        .map((el) => ({ el: `${el.tagName.toLowerCase()}#${el.id}.${el.className}`, right: el.getBoundingClientRect().right }))
        .filter((x) => x.right > innerWidth + 0.5);
      const fonts = Array.from(document.querySelectorAll("input, select, textarea")).map((el) => parseFloat(getComputedStyle(el).fontSize));
      const checks = Array.from(document.querySelectorAll(".check")).filter((c) => (c as HTMLElement).offsetParent !== null).map((c) => {
        const box = c.querySelector("input")!.getBoundingClientRect();
        const label = c.querySelector("label")!.getBoundingClientRect();
        return { id: c.querySelector("input")!.id, beside: box.right <= label.left && box.top < label.top + 24 && box.bottom > label.top };
      });
      const canvas = document.getElementById("chart")!.getBoundingClientRect();
      return { scrollWidth: document.documentElement.scrollWidth, wide, fonts, checks, canvas: { w: canvas.width, h: canvas.height } };
    });
    expect(layout.scrollWidth).toBeLessThanOrEqual(PHONE.width);
    expect(layout.wide).toEqual([]);
    expect(Math.min(...layout.fonts)).toBeGreaterThanOrEqual(16);
    expect(layout.checks.length).toBeGreaterThan(0);
    expect(layout.checks.filter((c) => !c.beside)).toEqual([]);
    expect(layout.canvas.h).toBeGreaterThanOrEqual(200); // two readable panels, not a 308×103 sliver
    await page.screenshot({ path: join(ARTIFACTS, "demo-390.png"), fullPage: true });

    await page.selectOption("#model", "url");
    await page.fill("#url", "not a url at all://");
    await page.click("#load");
    await page.waitForSelector("#error:not([hidden])");
    expect(await inViewport(page, "#error")).toBe(true);
    expect(await page.textContent("#error")).toMatch(/is not a web address/);
    await page.screenshot({ path: join(ARTIFACTS, "demo-error-390.png") });
    await page.context().close();
  });

  it("cross-origin isolated from this server (workers and memory per worker shown); without COOP/COEP it says why", async () => {
    const page = await open(DESKTOP);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await page.textContent("#e-isolated")).toBe("yes");
    expect(await page.textContent("#e-workers")).toBe("–"); // no model yet
    await page.uncheck("#opfs");
    await page.click("#load");
    await page.waitForSelector("body[data-state=idle] #model-summary:not(:text('No model loaded.'))");
    expect(await page.textContent("#e-workers")).toBe("1"); // the page's default
    expect(await page.textContent("#e-mem")).toMatch(/^[\d.]+ (KiB|MiB)$/);
    await page.context().close();

    // require-corp (what Safari supports): isolated too, and the worker and the model still load.
    const corp = await startDemoServer({ port: 0, host: "127.0.0.1", coep: "require-corp", models: { [SPARSE]: server.models[SPARSE] } });
    try {
      const p = await (await browser.newContext({ viewport: DESKTOP })).newPage();
      await p.goto(corp.url);
      await p.waitForSelector("body[data-ready=true]");
      expect(await p.evaluate(() => crossOriginIsolated)).toBe(true);
      await p.uncheck("#opfs");
      await p.click("#load");
      await p.waitForSelector("body[data-state=idle] #model-summary:not(:text('No model loaded.'))");
      await p.context().close();
    } finally {
      await corp.close();
    }

    const plain = await startDemoServer({ port: 0, host: "127.0.0.1", coep: "none", models: { [SPARSE]: server.models[SPARSE] } });
    try {
      const p = await (await browser.newContext({ viewport: DESKTOP })).newPage();
      await p.goto(plain.url);
      await p.waitForSelector("body[data-ready=true]");
      expect(await p.evaluate(() => crossOriginIsolated)).toBe(false);
      expect(await p.textContent("#e-isolated")).toBe("no");
      expect(await p.textContent("#e-why")).toMatch(/did not send “Cross-Origin-Opener-Policy: same-origin”.*falls back to one worker/);
      await p.context().close();
    } finally {
      await plain.close();
    }
    expect(pageErrors).toEqual([]);
  });
});
