// The demo page: pick a model (shipped, kept in this browser, a file, a URL), set a budget, generate with
// streaming text and the run's figures; manage the models kept in OPFS; see what the tab offers the engine.
// Built into dist/demo.js (self-contained) beside dist/worker.js.
import { FlashError, ShardError } from "@flashllm/sdk";
import type { ChatMessage, FlashStats } from "@flashllm/sdk";
import { FlashWorkerClient } from "../src/client.js";
import type { ModelSource } from "../src/client.js";
import { ProgressMeter, formatDuration } from "../src/progress-meter.js";
import type { EngineStats, GenerationResult, ModelInfo, Progress, StorageInfo, StreamedToken } from "../src/protocol.js";
import { formatBytes } from "../src/util.js";
import { drawChart } from "./chart.js";
import type { TokenFigures } from "./chart.js";
import { showEngine } from "./engine-panel.js";
import { UserError, explain } from "./explain.js";
import { StoragePanel } from "./storage-panel.js";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  model: $<HTMLSelectElement>("model"),
  modelServer: $("model-server"),
  modelOpfs: $("model-opfs"),
  about: $("model-about"),
  fileRow: $("file-row"),
  file: $<HTMLInputElement>("file"),
  urlRow: $("url-row"),
  url: $<HTMLInputElement>("url"),
  opfsRow: $("opfs-row"),
  opfs: $<HTMLInputElement>("opfs"),
  opfsSize: $("opfs-size"),
  budget: $<HTMLInputElement>("budget"),
  unlimited: $<HTMLInputElement>("unlimited"),
  ctx: $<HTMLInputElement>("ctx"),
  workers: $<HTMLSelectElement>("workers"),
  modeComplete: $<HTMLInputElement>("mode-complete"),
  modeChat: $<HTMLInputElement>("mode-chat"),
  chatNote: $("chat-note"),
  promptLabel: $("prompt-label"),
  chatLog: $("chat-log"),
  chatReset: $<HTMLButtonElement>("chat-reset"),
  load: $<HTMLButtonElement>("load"),
  progressBox: $("progress-box"),
  progress: $<HTMLProgressElement>("progress"),
  progressText: $("progress-text"),
  activity: $("activity"),
  summary: $("model-summary"),
  prompt: $<HTMLTextAreaElement>("prompt"),
  maxTokens: $<HTMLInputElement>("max-tokens"),
  temperature: $<HTMLInputElement>("temperature"),
  topP: $<HTMLInputElement>("top-p"),
  seed: $<HTMLInputElement>("seed"),
  generate: $<HTMLButtonElement>("generate"),
  stop: $<HTMLButtonElement>("stop"),
  output: $("output"),
  suggest: $("suggest"),
  suggestText: $("suggest-text"),
  suggestCopy: $<HTMLButtonElement>("suggest-copy"),
  error: $("error"),
  chart: $<HTMLCanvasElement>("chart"),
};

/** A model this server ships (from /models/index.json). */
interface ServerModel {
  name: string;
  bytes: number;
  title: string;
  about: string;
  sparse: boolean;
}

/** The page's default: the sparse model, the one the method is for. */
const DEFAULT_MODEL = "server:stories260K-relu-pred.flm";
const DEFAULT_PROMPT = "Once upon a time";
const SAVED = { model: "flashllm.demo.model", copy: "flashllm.demo.copyToOpfs", workers: "flashllm.demo.workers" };

let engine = FlashWorkerClient.create();
let loadedKey = ""; // what the loaded model was loaded from, with which settings
let busy: AbortController | undefined;
let serverModels: ServerModel[] = [];
let storedModels: StorageInfo["files"] = [];
const figures: TokenFigures[] = [];
/** The conversation in chat mode: the user's messages and the model's replies so far. */
const conversation: ChatMessage[] = [];
const meter = new ProgressMeter();

function setState(state: "idle" | "loading" | "generating" | "done" | "error"): void {
  document.body.dataset.state = state;
  const working = state === "loading" || state === "generating";
  ui.load.disabled = working;
  ui.generate.disabled = working;
  ui.suggestCopy.disabled = working;
  ui.chatReset.disabled = working;
  ui.stop.disabled = !working;
}

// ---- choosing a model -------------------------------------------------------------------------------

interface Chosen {
  source: ModelSource;
  /** File name in OPFS when copied there. */
  name: string;
  key: string;
  /** Read from OPFS already: the copy option does not apply. */
  stored: boolean;
  bytes?: number;
}

function chosenSource(): Chosen {
  const v = ui.model.value;
  if (v.startsWith("opfs:")) {
    const name = v.slice(5);
    return { source: { kind: "opfs", name }, name, key: `opfs:${name}`, stored: true, bytes: storedModels.find((f) => f.name === name)?.bytes };
  }
  if (v === "file") {
    const f = ui.file.files?.[0];
    if (!f) throw new UserError("Choose a .flm file first (the “File” field under the model list).");
    return { source: f, name: f.name, key: `file:${f.name}:${f.size}:${f.lastModified}`, stored: false, bytes: f.size };
  }
  if (v === "url") {
    const u = ui.url.value.trim();
    if (!u) throw new UserError("Type the address of a .flm model first (the “Address” field under the model list).");
    if (/\s/.test(u)) throw new UserError(`“${u}” is not a web address: it has spaces in it. It should look like https://example.org/model.flm.`);
    let url: URL;
    try {
      // "example.org/m.flm" means a site, not a path on this one; "/m.flm" and "./m.flm" are paths here.
      url = new URL(/^[a-z][a-z0-9+.-]*:/i.test(u) || /^[./]/.test(u) ? u : `https://${u}`, location.href);
    } catch {
      throw new UserError(`“${u}” is not a web address. It should look like https://example.org/model.flm.`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new UserError(`“${u}” is not a web address: it should start with https://.`);
    return { source: url.href, name: url.pathname.split("/").pop() || "model.flm", key: `url:${url.href}`, stored: false };
  }
  const name = v.replace(/^server:/, "");
  const url = new URL(`models/${name}`, location.href).href;
  return { source: url, name, key: `url:${url}`, stored: false, bytes: serverModels.find((m) => m.name === name)?.bytes };
}

/** Shows the fields and notes that go with the chosen model. */
function onModelChange(): void {
  const v = ui.model.value;
  ui.fileRow.hidden = v !== "file";
  ui.urlRow.hidden = v !== "url";
  ui.opfsRow.hidden = v.startsWith("opfs:");
  const shipped = serverModels.find((m) => `server:${m.name}` === v);
  const stored = storedModels.find((f) => `opfs:${f.name}` === v);
  ui.about.textContent = shipped
    ? `${formatBytes(shipped.bytes)}.${shipped.about ? ` ${shipped.about}.` : ""}`
    : stored
      ? `${formatBytes(stored.bytes)}, read from this browser's storage.`
      : v === "url"
        ? "Any server that answers HTTP Range requests; another site must also allow this page to read it (CORS)."
        : "";
  const bytes = shipped?.bytes ?? (v === "file" ? ui.file.files?.[0]?.size : undefined);
  ui.opfsSize.textContent = bytes ? `(${formatBytes(bytes)}, kept until you delete it below)` : "(kept until you delete it below)";
}

function fillModelList(): void {
  const option = (value: string, text: string) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  };
  const keep = ui.model.value;
  ui.modelServer.replaceChildren(...serverModels.map((m) => option(`server:${m.name}`, `${m.title} (${formatBytes(m.bytes)})`)));
  ui.modelOpfs.replaceChildren(...storedModels.filter((f) => f.complete).map((f) => option(`opfs:${f.name}`, `${f.name} (${formatBytes(f.bytes)})`)));
  ui.modelServer.hidden = serverModels.length === 0;
  ui.modelOpfs.hidden = ui.modelOpfs.childElementCount === 0;
  select(keep);
}

function select(value: string): void {
  const has = (v: string) => [...ui.model.options].some((o) => o.value === v);
  ui.model.value = has(value) ? value : has(DEFAULT_MODEL) ? DEFAULT_MODEL : (ui.model.options[0]?.value ?? "url");
  onModelChange();
}

function budgetBytes(): number | undefined {
  if (ui.unlimited.checked) return undefined;
  const mb = Number(ui.budget.value);
  if (!(mb > 0)) throw new UserError("The memory budget must be a number of megabytes above 0 (or tick “no memory limit”).");
  return Math.round(mb * 1e6);
}

// ---- loading ------------------------------------------------------------------------------------------

async function load(): Promise<ModelInfo> {
  hideError();
  const c = chosenSource();
  const memoryBudget = budgetBytes();
  const contextLength = Math.max(8, Math.floor(Number(ui.ctx.value) || 128));
  const copy = ui.opfs.checked && !c.stored;
  const workers = ui.workers.value === "auto" ? "auto" : Number(ui.workers.value);
  const settingsKey = `${c.key}|${memoryBudget}|${contextLength}|${copy}|${workers}`;
  if (settingsKey === loadedKey && engine.info) return engine.info;
  busy = new AbortController();
  clearRun(); // a new model: the last story and its figures no longer describe it
  resetConversation(); // a conversation belongs to the model that had it
  setState("loading");
  const onProgress = (p: Progress) => showProgress(p);
  try {
    let from: ModelSource = c.source;
    if (copy) {
      activity(`Copying ${c.name} into this browser's storage…`);
      meter.reset();
      const r = await engine.importToOpfs(c.source as Blob | string, c.name, { signal: busy.signal, onProgress });
      activity(r.alreadyComplete ? `${c.name} was already in this browser's storage.` : `Copied ${formatBytes(r.bytes)} into this browser's storage${r.resumedFrom ? ` (resumed after ${formatBytes(r.resumedFrom)})` : ""}.`);
      from = { kind: "opfs", name: c.name };
      // Ask once the site keeps a model: without it, the browser may evict it under storage pressure.
      if (!storage.last?.persisted) await storage.persist();
    } else activity(`Loading ${c.name}…`);
    meter.reset();
    const info = await engine.load(from, { memoryBudget, contextLength, workers, verifyReads: true, signal: busy.signal, onProgress });
    loadedKey = settingsKey;
    describeModel(info);
    showChatAvailability(info);
    activity(copy ? "Ready: reading from this browser's storage." : "Ready.");
    setState("idle");
    return info;
  } catch (e) {
    loadedKey = "";
    describeModel(engine.info);
    throw e;
  } finally {
    ui.progressBox.hidden = true;
    busy = undefined;
    void storage.refresh();
    showEngine($, engine.info);
  }
}

function describeModel(info: ModelInfo | undefined): void {
  if (!info) {
    ui.summary.textContent = "No model loaded.";
    $("f-mem").textContent = "–";
    return;
  }
  const p = info.memoryPlan;
  const neurons = info.config.nLayers * info.config.hiddenDim;
  const budget = Number.isFinite(p.budget) ? `budget ${formatBytes(p.budget)} + ${formatBytes(p.overheadBytes)} runtime` : "no budget";
  const where = info.source.startsWith("opfs:") ? `${info.source.slice(5)} from this browser's storage` : info.source.startsWith("file:") ? info.source.slice(5) : info.source;
  ui.summary.textContent =
    `Loaded ${where} (${formatBytes(info.fileBytes)}) in ${info.loadMs.toFixed(0)} ms. ` +
    `${Math.min(p.capacity, neurons)} of its ${neurons} feed-forward neurons fit in the cache; ` +
    `WASM memory ${formatBytes(info.wasmMemoryBytes)} (${budget}).`;
  $("f-mem").textContent = `${formatBytes(info.wasmMemoryBytes)} of ${Number.isFinite(p.budget) ? formatBytes(p.budget + p.overheadBytes) : "∞"}`;
}

function showProgress(p: Progress): void {
  ui.progressBox.hidden = false;
  const r = meter.update(p.loaded, p.total, performance.now());
  const verb = p.phase === "import" ? "Copying" : "Reading";
  if (r.total) {
    ui.progress.max = r.total;
    ui.progress.value = r.loaded;
    const parts = [`${verb} ${formatBytes(r.loaded)} of ${formatBytes(r.total)} (${r.percent!.toFixed(0)}%)`];
    if (r.bytesPerSecond) parts.push(`${formatBytes(r.bytesPerSecond)}/s`);
    if (r.secondsLeft !== undefined && r.loaded < r.total) parts.push(`${formatDuration(r.secondsLeft)} left`);
    if (p.resumedFrom) parts.push(`resumed after ${formatBytes(p.resumedFrom)}`);
    ui.progressText.textContent = parts.join(" · ");
  } else {
    ui.progress.removeAttribute("value");
    ui.progressText.textContent = `${verb} ${formatBytes(r.loaded)}${r.bytesPerSecond ? ` · ${formatBytes(r.bytesPerSecond)}/s` : ""}`;
  }
}

// ---- generating ---------------------------------------------------------------------------------------

async function generate(): Promise<void> {
  try {
    const info = await load();
    hideError();
    const maxTokens = Math.max(1, Math.floor(Number(ui.maxTokens.value) || 100));
    const temperature = Math.max(0, Number(ui.temperature.value) || 0);
    const topP = Number(ui.topP.value);
    const seed = ui.seed.value.trim() === "" ? undefined : Math.floor(Number(ui.seed.value));
    if (seed !== undefined && !(seed >= 0)) throw new UserError("The seed must be a whole number from 0 up, or empty for a random one.");
    const chatting = ui.modeChat.checked && info.hasChatTemplate;
    if (chatting && ui.prompt.value.trim() === "") throw new UserError("Write a message first.");
    busy = new AbortController();
    setState("generating");
    clearRun();
    const settings = { maxTokens, temperature, topP, seed, signal: busy.signal };
    let out: HTMLElement;
    let tokens: AsyncGenerator<StreamedToken, GenerationResult>;
    if (chatting) {
      conversation.push({ role: "user", content: ui.prompt.value });
      showTurn("user", ui.prompt.value);
      out = showTurn("assistant", "");
      tokens = engine.chat([...conversation], settings);
    } else {
      out = ui.output;
      out.textContent = ui.prompt.value;
      tokens = engine.generate(ui.prompt.value, settings);
    }
    genStatus("Generating…");
    const start = (await engine.stats()).flash;
    let prev = start;
    let tFirst = 0;
    let reply = "";
    try {
      for await (const t of tokens) {
        out.append(t.text);
        reply += t.text;
        figures.push(delta(prev, t.stats.flash));
        prev = t.stats.flash;
        const now = performance.now();
        if (figures.length === 1) tFirst = now;
        // Tokens after the first per second: the first one carries the prompt. The same measure as the
        // engine's final figure, which replaces it at the end.
        showRun(start, t.stats, figures.length > 1 ? ((figures.length - 1) * 1000) / (now - tFirst) : undefined);
      }
    } finally {
      // What was said stays in the conversation, even a reply that was stopped.
      if (chatting) conversation.push({ role: "assistant", content: reply });
    }
    if (chatting) ui.prompt.value = "";
    const s = engine.lastStats!;
    showRun(start, s.stats, s.tokensPerSecond || undefined);
    genStatus(`Done: ${s.generatedTokens} tokens; stopped because ${reason(s.finishReason)}.`);
    suggestCopy(start, s.stats);
    showEngine($, engine.info, s.stats.workerMemoryBytes);
    setState("done");
  } catch (e) {
    showError(e, "gen");
  } finally {
    busy = undefined;
  }
}

/** Adds one turn of the conversation to the chat log; returns the element its text goes into. */
function showTurn(role: "user" | "assistant", text: string): HTMLElement {
  const turn = document.createElement("div");
  turn.className = `turn ${role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = role === "user" ? "You" : "Model";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  turn.append(who, body);
  ui.chatLog.append(turn);
  ui.chatLog.hidden = false;
  return body;
}

/** Chat needs the model's chat template: without one, the page says so and keeps completion mode. */
function showChatAvailability(info: ModelInfo | undefined): void {
  const none = info !== undefined && !info.hasChatTemplate;
  ui.modeChat.disabled = none;
  if (none && ui.modeChat.checked) ui.modeComplete.checked = true;
  ui.chatNote.textContent = none
    ? "This model has no chat template, so it continues text only. Chat works with models converted with one (from a Hugging Face folder whose tokenizer_config.json has chat_template, or a GGUF that carries it)."
    : info && ui.modeChat.checked
      ? "The conversation is rendered with the model's chat template; its reply ends at the template's end-of-turn marker."
      : "";
  onModeChange();
}

function onModeChange(): void {
  const chat = ui.modeChat.checked;
  ui.promptLabel.textContent = chat ? "Your message" : "Prompt";
  ui.generate.textContent = chat ? "Send" : "Generate";
  ui.chatReset.hidden = !chat;
  ui.output.hidden = chat;
  ui.chatLog.hidden = !chat || ui.chatLog.childElementCount === 0;
  // The story opening is a prompt, not a message; an empty box gets it back in completion mode.
  if (chat && ui.prompt.value === DEFAULT_PROMPT) ui.prompt.value = "";
  if (!chat && ui.prompt.value === "") ui.prompt.value = DEFAULT_PROMPT;
}

function resetConversation(): void {
  conversation.length = 0;
  ui.chatLog.replaceChildren();
  ui.chatLog.hidden = true;
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
  return ({ maxTokens: "it reached the number of tokens asked for", stopToken: "the story ended", contextFull: "the context is full (raise the context length for longer stories)", aborted: "you stopped it" } as Record<string, string>)[r] ?? r;
}

/** The run's totals (from its start to now) and the one tokens-per-second figure. */
function showRun(start: FlashStats, now: EngineStats, tokensPerSecond: number | undefined): void {
  const f = now.flash;
  const passes = Math.max(1, f.tokens - start.tokens); // forward passes, prompt included
  const bytes = f.bytesRead - start.bytesRead;
  const active = f.activeNeurons - start.activeNeurons;
  $("f-tps").textContent = tokensPerSecond ? tokensPerSecond.toFixed(1) : "–";
  $("f-tokens").textContent = `${figures.length} (+ ${passes - figures.length} of prompt)`;
  $("f-total").textContent = formatBytes(bytes);
  $("f-bytes").textContent = formatBytes(Math.round(bytes / passes));
  $("f-hits").textContent = active > 0 ? `${((100 * (f.cacheHits - start.cacheHits)) / active).toFixed(0)}%` : "–";
  $("f-time").textContent = [f.ioMs - start.ioMs, f.memoryMs - start.memoryMs, f.computeMs - start.computeMs].map((ms) => (ms / passes).toFixed(2)).join(" / ") + " ms";
  const p = engine.info?.memoryPlan;
  if (p) $("f-mem").textContent = `${formatBytes(now.peakWasmMemoryBytes)} of ${Number.isFinite(p.budget) ? formatBytes(p.budget + p.overheadBytes) : "∞"}`;
  const n = figures.length;
  if (n <= 1 || n % 2 === 0) requestAnimationFrame(redraw);
}

/** After a run over the network: how much it waited for reads, and the offer of a local copy. */
function suggestCopy(start: FlashStats, now: EngineStats): void {
  const info = engine.info;
  ui.suggest.hidden = true;
  if (!info || info.source.startsWith("opfs:")) return;
  const f = now.flash;
  if (f.bytesRead === start.bytesRead) return; // everything came from the cache: nothing to speed up
  const io = f.ioMs - start.ioMs;
  const all = io + (f.memoryMs - start.memoryMs) + (f.computeMs - start.computeMs);
  if (!(all > 0)) return;
  const over = info.source.startsWith("file:") ? "from the file" : "over the network";
  ui.suggestText.textContent =
    `This run read ${formatBytes(f.bytesRead - start.bytesRead)} ${over}, and ${((100 * io) / all).toFixed(0)}% of each token's time went to waiting for it. ` +
    `A copy in this browser's storage (${formatBytes(info.fileBytes)}, once) is read locally, straight into the cache.`;
  ui.suggest.hidden = false;
}

function clearRun(): void {
  figures.length = 0;
  ui.output.textContent = "";
  ui.suggest.hidden = true;
  for (const id of ["f-tps", "f-tokens", "f-total", "f-bytes", "f-hits", "f-time"]) $(id).textContent = "–";
  requestAnimationFrame(redraw);
}

function redraw(): void {
  drawChart(ui.chart, figures, formatBytes);
}

/** What loading is doing now (section 1); the loaded model's summary stays beside it. */
function activity(text: string): void {
  ui.activity.textContent = text;
}

/** What generation is doing now (section 2). */
function genStatus(text: string): void {
  $("gen-status").textContent = text;
}

// ---- errors -----------------------------------------------------------------------------------------

/**
 * Shows an error beside the control that was used (`slot`: model, gen or storage) and brings it into
 * view, so that it is where the user is looking.
 */
function showError(e: unknown, slot: "model" | "gen" | "storage"): void {
  const aborted = e instanceof FlashError && e.code === "ABORTED";
  const deadWorker = !(e instanceof FlashError) && /worker/.test((e as Error)?.message ?? "");
  if (deadWorker) {
    engine = FlashWorkerClient.create(); // a dead worker is replaced
    loadedKey = "";
  }
  if (!engine.info) {
    clearRun(); // nothing loaded: no story or figures of a model that is gone
    resetConversation();
    describeModel(undefined);
  }
  setState(aborted ? "idle" : "error");
  const say = slot === "gen" ? genStatus : activity;
  if (aborted) {
    say("Stopped.");
    return;
  }
  activity("");
  genStatus("");
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
  $(`error-slot-${slot}`).append(ui.error);
  ui.error.hidden = false;
  ui.error.focus({ preventScroll: true });
  ui.error.scrollIntoView({ block: "nearest", behavior: "instant" as ScrollBehavior });
}

function hideError(): void {
  ui.error.hidden = true;
}

// ---- storage and engine panels ----------------------------------------------------------------------

const storage = new StoragePanel($, {
  engine: () => engine,
  use: (name) => {
    select(`opfs:${name}`);
    ui.model.scrollIntoView({ block: "nearest" });
    void load().catch((e) => showError(e, "model"));
  },
  beforeDelete: async (name) => {
    if (engine.info?.source === `opfs:${name}`) {
      await engine.unload();
      loadedKey = "";
      clearRun();
      describeModel(undefined);
      activity(`Unloaded ${name} to delete it.`);
    }
  },
  changed: (info) => {
    storedModels = info.files;
    fillModelList();
  },
  error: (e) => showError(e, "storage"),
});

async function listServerModels(): Promise<void> {
  try {
    const res = await fetch("models/index.json", { cache: "no-cache" });
    if (res.ok) serverModels = (await res.json()) as ServerModel[];
  } catch {
    // A static host without the index: the picker offers files, URLs and stored models.
  }
}

// ---- wiring -----------------------------------------------------------------------------------------

ui.load.addEventListener("click", () => void load().catch((e) => showError(e, "model")));
ui.generate.addEventListener("click", () => void generate());
ui.stop.addEventListener("click", () => busy?.abort());
ui.suggestCopy.addEventListener("click", () => {
  ui.opfs.checked = true;
  localStorage.setItem(SAVED.copy, "1");
  void load().catch((e) => showError(e, "gen"));
});
ui.prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !ui.generate.disabled) {
    e.preventDefault();
    void generate();
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && busy) busy.abort();
});
ui.workers.addEventListener("change", () => localStorage.setItem(SAVED.workers, ui.workers.value));
ui.modeComplete.addEventListener("change", () => showChatAvailability(engine.info));
ui.modeChat.addEventListener("change", () => showChatAvailability(engine.info));
ui.chatReset.addEventListener("click", () => {
  resetConversation();
  clearRun();
});
ui.model.addEventListener("change", () => {
  onModelChange();
  localStorage.setItem(SAVED.model, ui.model.value);
});
ui.file.addEventListener("change", onModelChange);
ui.opfs.addEventListener("change", () => localStorage.setItem(SAVED.copy, ui.opfs.checked ? "1" : "0"));
ui.unlimited.addEventListener("change", () => (ui.budget.disabled = ui.unlimited.checked));
window.addEventListener("resize", () => requestAnimationFrame(redraw));

// The copy is offered by default (reads from storage are what the method is built for); a choice the
// user made is remembered.
ui.opfs.checked = localStorage.getItem(SAVED.copy) !== "0";
ui.workers.value = ["1", "2", "auto"].includes(localStorage.getItem(SAVED.workers) ?? "") ? localStorage.getItem(SAVED.workers)! : "1";
ui.workers.options[2].textContent = `auto (${navigator.hardwareConcurrency || 1} cores)`;
setState("idle");
redraw();
showEngine($, undefined);
const ready = (async () => {
  const saved = localStorage.getItem(SAVED.model) ?? DEFAULT_MODEL;
  await listServerModels();
  fillModelList();
  await storage.refresh(); // lists the stored models in the picker too
  select(saved);
  document.body.dataset.ready = "true";
})();

// For tests and the curious: the client class, the error class of a failed shard, and this page's engine.
Object.assign(globalThis, { flashllmDemo: { FlashWorkerClient, ShardError, ready, get engine() { return engine; } } });
