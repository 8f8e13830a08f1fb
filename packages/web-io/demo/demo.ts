// The demo page: pick a model, set a budget, generate with streaming text and per-token figures.
// Built into dist/demo.js (self-contained) beside dist/worker.js.
import { FlashError } from "@flashllm/sdk";
import type { FlashStats } from "@flashllm/sdk";
import { FlashWorkerClient } from "../src/client.js";
import type { ModelSource } from "../src/client.js";
import type { EngineStats, ModelInfo, Progress } from "../src/protocol.js";
import { formatBytes } from "../src/util.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  file: $<HTMLInputElement>("file"),
  url: $<HTMLInputElement>("url"),
  opfs: $<HTMLInputElement>("opfs"),
  budget: $<HTMLInputElement>("budget"),
  unlimited: $<HTMLInputElement>("unlimited"),
  ctx: $<HTMLInputElement>("ctx"),
  load: $<HTMLButtonElement>("load"),
  progress: $<HTMLProgressElement>("progress"),
  status: $("model-status"),
  prompt: $<HTMLTextAreaElement>("prompt"),
  maxTokens: $<HTMLInputElement>("max-tokens"),
  temperature: $<HTMLInputElement>("temperature"),
  generate: $<HTMLButtonElement>("generate"),
  stop: $<HTMLButtonElement>("stop"),
  output: $("output"),
  error: $("error"),
  chart: $<HTMLCanvasElement>("chart"),
};

/** One token's figures (differences of the engine's cumulative stats). */
interface TokenFigures {
  bytes: number;
  hitRate: number;
  ioMs: number;
  memoryMs: number;
  computeMs: number;
}

let engine = FlashWorkerClient.create();
let loadedKey = ""; // what the loaded model was loaded from, with which settings
let busy: AbortController | undefined;
const figures: TokenFigures[] = [];

function setState(state: "idle" | "loading" | "generating" | "done" | "error"): void {
  document.body.dataset.state = state;
  const working = state === "loading" || state === "generating";
  ui.load.disabled = working;
  ui.generate.disabled = working;
  ui.stop.disabled = !working;
}

function chosenSource(): { source: ModelSource; name: string; key: string } {
  const kind = (document.querySelector('input[name="source"]:checked') as HTMLInputElement).value;
  if (kind === "file") {
    const f = ui.file.files?.[0];
    if (!f) throw new UserError("Choose a .flm file first (the file picker next to “a .flm file on this computer”).");
    return { source: f, name: f.name, key: `file:${f.name}:${f.size}:${f.lastModified}` };
  }
  if (kind === "url") {
    const u = ui.url.value.trim();
    if (!u) throw new UserError("Type the address of a .flm model first.");
    let url: URL;
    try {
      url = new URL(u, location.href);
    } catch {
      throw new UserError(`“${u}” is not a web address.`);
    }
    return { source: url.href, name: url.pathname.split("/").pop() || "model.flm", key: `url:${url.href}` };
  }
  const url = new URL("models/stories260K.flm", location.href).href;
  return { source: url, name: "stories260K.flm", key: `url:${url}` };
}

function budgetBytes(): number | undefined {
  if (ui.unlimited.checked) return undefined;
  const mb = Number(ui.budget.value);
  if (!(mb > 0)) throw new UserError("The memory budget must be a number of megabytes above 0 (or tick “no limit”).");
  return Math.round(mb * 1e6);
}

async function load(): Promise<ModelInfo> {
  hideError();
  const { source, name, key } = chosenSource();
  const memoryBudget = budgetBytes();
  const contextLength = Math.max(8, Math.floor(Number(ui.ctx.value) || 256));
  const settingsKey = `${key}|${memoryBudget}|${contextLength}|${ui.opfs.checked}`;
  if (settingsKey === loadedKey && engine.info) return engine.info;
  busy = new AbortController();
  setState("loading");
  const onProgress = (p: Progress) => showProgress(p);
  try {
    let from: ModelSource = source;
    if (ui.opfs.checked) {
      status(`Copying ${name} into this browser's storage…`);
      const r = await engine.importToOpfs(source as Blob | string, name, { signal: busy.signal, onProgress });
      status(r.alreadyComplete ? `${name} is already in this browser's storage.` : `Copied ${formatBytes(r.bytes)}${r.resumedFrom ? ` (resumed after ${formatBytes(r.resumedFrom)})` : ""}.`);
      from = { kind: "opfs", name };
    }
    status(`Loading ${name}…`);
    const info = await engine.load(from, { memoryBudget, contextLength, verifyReads: true, signal: busy.signal, onProgress });
    loadedKey = settingsKey;
    describeModel(info);
    setState("idle");
    return info;
  } catch (e) {
    loadedKey = "";
    throw e;
  } finally {
    ui.progress.hidden = true;
    busy = undefined;
  }
}

async function generate(): Promise<void> {
  try {
    await load();
    hideError();
    const maxTokens = Math.max(1, Math.floor(Number(ui.maxTokens.value) || 100));
    const temperature = Math.max(0, Number(ui.temperature.value) || 0);
    busy = new AbortController();
    setState("generating");
    ui.output.textContent = ui.prompt.value;
    figures.length = 0;
    let prev = (await engine.stats()).flash;
    for await (const t of engine.generate(ui.prompt.value, { maxTokens, temperature, signal: busy.signal })) {
      ui.output.append(t.text);
      figures.push(delta(prev, t.stats.flash));
      prev = t.stats.flash;
      showFigures(t.stats);
    }
    const s = engine.lastStats!;
    status(`${s.generatedTokens} tokens at ${s.tokensPerSecond.toFixed(1)} tokens/s; stopped because ${reason(s.finishReason)}.`);
    setState("done");
  } catch (e) {
    showError(e);
  } finally {
    busy = undefined;
  }
}

function delta(a: FlashStats, b: FlashStats): TokenFigures {
  const active = b.activeNeurons - a.activeNeurons;
  return {
    bytes: b.bytesRead - a.bytesRead,
    hitRate: active > 0 ? (b.cacheHits - a.cacheHits) / active : 1,
    ioMs: b.ioMs - a.ioMs,
    memoryMs: b.memoryMs - a.memoryMs,
    computeMs: b.computeMs - a.computeMs,
  };
}

function reason(r: string): string {
  return ({ maxTokens: "it reached the number of tokens asked for", stopToken: "the story ended", contextFull: "the context is full", aborted: "you stopped it" } as Record<string, string>)[r] ?? r;
}

function describeModel(info: ModelInfo): void {
  const p = info.memoryPlan;
  const neurons = info.config.nLayers * info.config.hiddenDim;
  const budget = Number.isFinite(p.budget) ? `budget ${formatBytes(p.budget)} + ${formatBytes(p.overheadBytes)} runtime` : "no budget";
  status(
    `Loaded ${info.source} (${formatBytes(info.fileBytes)}) in ${info.loadMs.toFixed(0)} ms. ` +
      `${Math.min(p.capacity, neurons)} of ${neurons} feed-forward neurons fit in the cache; ` +
      `WASM memory ${formatBytes(info.wasmMemoryBytes)} (${budget}).`,
  );
  $("f-mem").textContent = `${formatBytes(info.wasmMemoryBytes)} of ${Number.isFinite(p.budget) ? formatBytes(p.budget + p.overheadBytes) : "∞"}`;
}

function showFigures(stats: EngineStats): void {
  const n = figures.length;
  const last = figures.slice(-16); // recent tokens: the first ones include the prompt and a cold cache
  const mean = (f: (t: TokenFigures) => number) => last.reduce((s, t) => s + f(t), 0) / last.length;
  const ms = mean((t) => t.ioMs + t.memoryMs + t.computeMs);
  $("f-tps").textContent = ms > 0 ? (1000 / ms).toFixed(0) : "–";
  $("f-bytes").textContent = formatBytes(Math.round(mean((t) => t.bytes)));
  $("f-hits").textContent = `${(100 * mean((t) => t.hitRate)).toFixed(0)}%`;
  $("f-time").textContent = `${mean((t) => t.ioMs).toFixed(2)} / ${mean((t) => t.memoryMs).toFixed(2)} / ${mean((t) => t.computeMs).toFixed(2)} ms`;
  const p = engine.info?.memoryPlan;
  if (p) $("f-mem").textContent = `${formatBytes(stats.peakWasmMemoryBytes)} of ${Number.isFinite(p.budget) ? formatBytes(p.budget + p.overheadBytes) : "∞"}`;
  if (n === 1 || n % 2 === 0) requestAnimationFrame(drawChart);
}

/** Two panels: bytes read per token (bars) with the cache hit rate (line, 0–100%); time split (stacked). */
function drawChart(): void {
  const c = ui.chart;
  const dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth || c.width;
  const h = Math.round((w * 240) / 720);
  if (c.width !== Math.round(w * dpr)) {
    c.width = Math.round(w * dpr);
    c.height = Math.round(h * dpr);
  }
  const g = c.getContext("2d")!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const color = (v: string) => css.getPropertyValue(v).trim();
  const left = 64, right = 40, gap = 26;
  const ph = (h - gap - 24) / 2;
  const n = Math.max(figures.length, 20);
  const bw = (w - left - right) / n;
  // Scale to the tokens after the first: the first also carries the prompt and a cold cache, and would
  // flatten the rest. Its bars are clipped at the top.
  const scaled = figures.length > 1 ? figures.slice(1) : figures;
  const maxBytes = Math.max(1, ...scaled.map((f) => f.bytes));
  const maxMs = Math.max(0.001, ...scaled.map((f) => f.ioMs + f.memoryMs + f.computeMs));
  const top = 8, top2 = 8 + ph + gap;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = color("--muted");
  g.textAlign = "right";
  g.fillText(formatBytes(maxBytes), left - 6, top + 10);
  g.fillText("0", left - 6, top + ph);
  g.fillText(`${maxMs.toFixed(1)} ms`, left - 6, top2 + 10);
  g.fillText("0", left - 6, top2 + ph);
  g.textAlign = "left";
  g.fillText("100%", w - right + 4, top + 10);
  g.fillText("0%", w - right + 4, top + ph);
  g.fillText(`tokens 1 … ${figures.length}: bytes read and cache hit rate above, time per token below (the first token includes the prompt)`, left, h - 6);
  g.strokeStyle = color("--line");
  g.lineWidth = 1;
  g.strokeRect(left, top, w - left - right, ph);
  g.strokeRect(left, top2, w - left - right, ph);
  figures.forEach((f, i) => {
    const x = left + i * bw + bw * 0.1;
    const bwi = Math.max(1, bw * 0.8);
    const bh = Math.min(ph, (f.bytes / maxBytes) * ph);
    g.fillStyle = color("--bytes");
    g.fillRect(x, top + ph - bh, bwi, bh);
    let y = top2 + ph;
    for (const [v, col] of [[f.ioMs, "--io"], [f.memoryMs, "--mem"], [f.computeMs, "--cpu"]] as const) {
      const hh = Math.min(y - top2, (v / maxMs) * ph);
      g.fillStyle = color(col);
      g.fillRect(x, y - hh, bwi, hh);
      y -= hh;
    }
  });
  g.strokeStyle = color("--hits");
  g.lineWidth = 2;
  g.beginPath();
  figures.forEach((f, i) => {
    const x = left + (i + 0.5) * bw;
    const y = top + ph - f.hitRate * ph;
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
}

function showProgress(p: Progress): void {
  ui.progress.hidden = false;
  if (p.total) {
    ui.progress.max = p.total;
    ui.progress.value = p.loaded;
    status(`${p.phase === "import" ? "Copying" : "Reading"}: ${formatBytes(p.loaded)} of ${formatBytes(p.total)}${p.resumedFrom ? ` (resumed after ${formatBytes(p.resumedFrom)})` : ""}`);
  } else {
    ui.progress.removeAttribute("value");
    status(`Reading: ${formatBytes(p.loaded)}`);
  }
}

function status(text: string): void {
  ui.status.textContent = text;
}

/** A mistake in the form, explained as is. */
class UserError extends Error {}

/** Says what went wrong in words a user understands; the technical message stays one click away. */
function explain(e: unknown): string {
  if (e instanceof UserError) return e.message;
  if (!(e instanceof FlashError)) return `Something went wrong: ${(e as Error)?.message ?? e}`;
  const d = e.details as Record<string, number>;
  switch (e.code as string) {
    case "ABORTED":
      return "Stopped.";
    case "BUDGET_TOO_SMALL":
      return `The memory budget of ${formatBytes(d.budget)} is too small for this model: it needs at least ${formatBytes(d.minimum)}. Raise the budget, or shorten the context length.`;
    case "TRUNCATED":
      return "The model file is incomplete: it is shorter than its own table of contents says. Download or copy it again.";
    case "CHECKSUM_MISMATCH":
      return "The model file is damaged: its contents do not match their checksums. Download or copy it again.";
    case "BAD_MAGIC":
      return "This is not a flashllm model (.flm) file. Convert a model with “flashllm convert” first.";
    case "BAD_VERSION":
    case "BAD_HEADER":
    case "BAD_MANIFEST":
      return `This model file cannot be read by this version of flashllm (${e.message}).`;
    case "QUOTA_EXCEEDED":
      return e.message.replace(/^not enough/, "Not enough");
    case "CONTEXT_OVERFLOW":
      return `The prompt is longer than the context holds (${d.contextLength} tokens). Shorten it or raise the context length.`;
    case "OUT_OF_MEMORY":
      return "The browser could not give the model more memory. Lower the memory budget or close other tabs.";
    case "READ_FAILED":
      return `The model could not be read: ${e.message}`;
    default:
      return e.message;
  }
}

function showError(e: unknown): void {
  const aborted = e instanceof FlashError && e.code === "ABORTED";
  setState(aborted ? "idle" : "error");
  if (aborted) {
    status("Stopped.");
    return;
  }
  status(engine.info ? `Model loaded: ${engine.info.source}.` : "No model loaded.");
  ui.error.replaceChildren();
  const p = document.createElement("p");
  p.textContent = explain(e);
  ui.error.append(p);
  if (e instanceof Error && !(e instanceof UserError)) {
    const det = document.createElement("details");
    const sum = document.createElement("summary");
    sum.textContent = "Technical details";
    const pre = document.createElement("pre");
    pre.textContent = `${e.name}${e instanceof FlashError ? ` ${e.code}` : ""}: ${e.message}`;
    det.append(sum, pre);
    ui.error.append(det);
  }
  ui.error.hidden = false;
  if (/worker/.test((e as Error)?.message ?? "")) engine = FlashWorkerClient.create(); // a dead worker is replaced
}

function hideError(): void {
  ui.error.hidden = true;
}

ui.load.addEventListener("click", () => void load().catch(showError));
ui.generate.addEventListener("click", () => void generate());
ui.stop.addEventListener("click", () => busy?.abort());
ui.prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !ui.generate.disabled) {
    e.preventDefault();
    void generate();
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && busy) busy.abort();
});
// Picking a file or typing a URL selects that source, so the keyboard path is short.
ui.file.addEventListener("change", () => (($<HTMLInputElement>("src-file")).checked = true));
ui.url.addEventListener("input", () => (($<HTMLInputElement>("src-url")).checked = true));
ui.unlimited.addEventListener("change", () => (ui.budget.disabled = ui.unlimited.checked));
setState("idle");
drawChart();

// For tests and the curious: the client class and this page's engine.
Object.assign(globalThis, { flashllmDemo: { FlashWorkerClient, get engine() { return engine; } } });
