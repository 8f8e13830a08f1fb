import { throwIfAborted } from "@flashllm/sdk";
import type { ChatMessage } from "@flashllm/sdk";
import { deserializeError } from "./errors.js";
import type {
  ChatSettings, EngineStats, GenerateSettings, GenerationResult, ImportResult, ImportSettings, LoadOptions, ModelInfo, ModelSourceSpec, Progress,
  WorkerRequest, WorkerResponse, StorageInfo, StreamedToken,
} from "./protocol.js";

/**
 * What {@link FlashWorkerClient.load} reads: a {@link ModelSourceSpec}, or for short a `File`/`Blob`
 * (read slice by slice), a URL (HTTP Range), or `{ kind: "opfs", name }` (origin private file system).
 */
export type ModelSource = ModelSourceSpec | Blob | string | URL;

/** Options of {@link FlashWorkerClient.load}. */
export interface ClientLoadOptions extends LoadOptions {
  /** Cancels the load; the worker stays usable. */
  signal?: AbortSignal;
  /** Bytes read while opening (also dispatched as a `progress` event). */
  onProgress?: (progress: Progress) => void;
}

/** Options of {@link FlashWorkerClient.generate}: the SDK's `GenerateOptions`. */
export interface ClientGenerateOptions extends GenerateSettings {
  /** Stops generation; the iterator then throws the SDK's `AbortedError` and the model stays usable. */
  signal?: AbortSignal;
}

/** Options of {@link FlashWorkerClient.chat}: sampling and stop strings. */
export interface ClientChatOptions extends ChatSettings {
  /** Stops the reply; the iterator then throws the SDK's `AbortedError` and the model stays usable. */
  signal?: AbortSignal;
}

/** Options of {@link FlashWorkerClient.importToOpfs}. */
export interface ClientImportOptions extends ImportSettings {
  /** Stops the copy; a later import of the same source resumes where it stopped. */
  signal?: AbortSignal;
  onProgress?: (progress: Progress) => void;
}

/** Options of {@link FlashWorkerClient.create}. */
export interface CreateClientOptions {
  /** URL of the worker module (default: `worker.js` beside this module, i.e. `@flashllm/web-io/worker.js`). */
  workerUrl?: string | URL;
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  onProgress?: (p: Progress) => void;
  onToken?: (t: StreamedToken) => void;
}

/**
 * The main thread's handle on an engine running in a dedicated worker: the SDK's API shape
 * (`generate` streams tokens as an async iterator, `AbortSignal`s cancel, `lastStats` after a
 * generation), with the work and the model's memory off the page's thread. Errors arrive as the
 * SDK's error classes (`SourceError`, `BudgetError`, `AbortedError`, …) with their `code`.
 *
 * Dispatches `progress` events (`CustomEvent<Progress>`) during loads and imports.
 *
 * @example
 * const engine = FlashWorkerClient.create();
 * await engine.load("/models/stories260K.flm", { memoryBudget: 900_000, contextLength: 256 });
 * for await (const t of engine.generate("Once upon a time", { maxTokens: 50 })) out.append(t.text);
 */
export class FlashWorkerClient extends EventTarget {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private _info: ModelInfo | undefined;
  private _lastStats: GenerationResult | undefined;
  private dead: Error | undefined;

  /** Wraps a worker that runs `hostFlashWorker` (see `@flashllm/web-io/worker.js`). */
  constructor(readonly worker: Worker) {
    super();
    worker.addEventListener("message", (e: MessageEvent<WorkerResponse>) => this.onMessage(e.data));
    worker.addEventListener("error", (e: ErrorEvent) => {
      e.preventDefault?.();
      this.fail(new Error(`the flashllm worker failed${e.message ? `: ${e.message}` : " to start (is worker.js served beside the page's script, as a JavaScript module?)"}`));
    });
    worker.addEventListener("messageerror", () => this.fail(new Error("a message from the flashllm worker could not be read")));
  }

  /** Starts a worker from the ready-made worker module and returns its client. */
  static create(options: CreateClientOptions = {}): FlashWorkerClient {
    // Written out in full so that bundlers (Vite, webpack, esbuild plugins) see and emit the worker.
    const worker = options.workerUrl
      ? new Worker(options.workerUrl, { type: "module", name: "flashllm" })
      : new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "flashllm" });
    return new FlashWorkerClient(worker);
  }

  /** The loaded model, or undefined. */
  get info(): ModelInfo | undefined {
    return this._info;
  }

  /** Figures of the last finished generation (the SDK's `GenerationStats` plus the engine's). */
  get lastStats(): GenerationResult | undefined {
    return this._lastStats;
  }

  /**
   * Opens a `.flm` model in the worker (replacing the loaded one). Rejects with the SDK's errors:
   * `BudgetError` (budget too small, with the numbers), `FormatError` (TRUNCATED, CHECKSUM_MISMATCH, …),
   * `SourceError` (server without Range, file missing), `AbortedError`.
   */
  async load(source: ModelSource, options: ClientLoadOptions = {}): Promise<ModelInfo> {
    const { signal, onProgress, ...opts } = options;
    this._info = undefined;
    const info = (await this.call({ type: "load", source: toSpec(source), options: opts }, signal, onProgress)) as ModelInfo;
    this._info = info;
    return info;
  }

  /**
   * Streams the continuation of `prompt` token by token, each with the engine's figures right after
   * it. Returns the generation's figures (also in {@link lastStats}). Leaving the loop early stops the
   * generation in the worker.
   */
  async *generate(prompt: string, options: ClientGenerateOptions = {}): AsyncGenerator<StreamedToken, GenerationResult> {
    const { signal, ...settings } = options;
    return yield* this.stream({ type: "generate", prompt, options: settings }, signal);
  }

  /**
   * Streams the model's reply to a conversation: `messages` rendered with the model's chat template
   * (`info.hasChatTemplate`; without one the call fails with NO_CHAT_TEMPLATE), ending at the
   * template's end-of-turn marker, `stop` strings, `maxTokens` or the end of the context. Tokens and
   * figures stream as with {@link generate}.
   */
  async *chat(messages: ChatMessage[], options: ClientChatOptions = {}): AsyncGenerator<StreamedToken, GenerationResult> {
    const { signal, ...settings } = options;
    return yield* this.stream({ type: "chat", messages, options: settings }, signal);
  }

  private async *stream(request: DistributiveOmit<Extract<WorkerRequest, { type: "generate" | "chat" }>, "id">, signal?: AbortSignal): AsyncGenerator<StreamedToken, GenerationResult> {
    throwIfAborted(signal);
    this.checkAlive();
    const id = this.nextId++;
    const tokens: StreamedToken[] = [];
    let end: { value?: GenerationResult; error?: Error } | undefined;
    let wake: (() => void) | undefined;
    this.pending.set(id, {
      onToken: (t) => (tokens.push(t), wake?.()),
      resolve: (v) => ((end = { value: v as GenerationResult }), wake?.()),
      reject: (e) => ((end = { error: e }), wake?.()),
    });
    const onAbort = () => this.post({ type: "abort", id: this.nextId++, target: id });
    signal?.addEventListener("abort", onAbort, { once: true });
    this.post({ ...request, id } as WorkerRequest);
    try {
      for (;;) {
        if (tokens.length > 0) {
          yield tokens.shift()!;
          continue;
        }
        if (end?.error) throw end.error;
        if (end) {
          this._lastStats = end.value!;
          return end.value!;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!end) onAbort(); // the caller left the loop: stop the worker too
      this.pending.delete(id);
    }
  }

  /** Cancels whatever the worker is doing for this client (load, generation, import). */
  abort(): void {
    for (const id of this.pending.keys()) this.post({ type: "abort", id: this.nextId++, target: id });
  }

  /** The engine's cumulative figures now (bytes read, cache hits, time split, WASM memory). */
  async stats(): Promise<EngineStats> {
    return (await this.call({ type: "stats" })) as EngineStats;
  }

  /**
   * Copies a `File` or the file at a URL into the origin private file system as `name`, so that the
   * next visit loads it with `{ kind: "opfs", name }`. Resumes an interrupted copy of the same source;
   * rejects with `QuotaError` (code `QUOTA_EXCEEDED`) when the origin's storage cannot hold it.
   */
  async importToOpfs(from: Blob | string | URL, name: string, options: ClientImportOptions = {}): Promise<ImportResult> {
    const { signal, onProgress, ...settings } = options;
    const src = typeof from === "string" || from instanceof URL ? absolute(from) : from;
    return (await this.call({ type: "import", from: src, name, options: settings }, signal, onProgress)) as ImportResult;
  }

  /** The origin's quota and usage, and the models in OPFS. */
  async storage(): Promise<StorageInfo> {
    return (await this.call({ type: "storage" })) as StorageInfo;
  }

  /** Deletes a model from OPFS (unloading it first if it is the loaded one). */
  async removeFromOpfs(name: string): Promise<void> {
    await this.call({ type: "remove", name });
  }

  /** Frees the loaded model's memory in the worker. */
  async unload(): Promise<void> {
    await this.call({ type: "unload" });
    this._info = undefined;
  }

  /** Stops the worker at once; pending calls reject. */
  terminate(): void {
    this.worker.terminate();
    this.fail(new Error("the flashllm worker was terminated"));
  }

  private call(message: DistributiveOmit<WorkerRequest, "id">, signal?: AbortSignal, onProgress?: (p: Progress) => void): Promise<unknown> {
    throwIfAborted(signal);
    this.checkAlive();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.post({ type: "abort", id: this.nextId++, target: id });
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        signal?.removeEventListener("abort", onAbort);
        this.pending.delete(id);
      };
      this.pending.set(id, {
        resolve: (v) => (done(), resolve(v)),
        reject: (e) => (done(), reject(e)),
        onProgress,
      });
      this.post({ ...message, id } as WorkerRequest);
    });
  }

  private onMessage(m: WorkerResponse): void {
    if (m.type === "ready") return;
    const p = this.pending.get(m.id);
    if (!p) return; // an answer to a call the caller already left
    switch (m.type) {
      case "token":
        p.onToken?.(m.token);
        return;
      case "progress":
        p.onProgress?.(m.progress);
        this.dispatchEvent(new CustomEvent<Progress>("progress", { detail: m.progress }));
        return;
      case "result":
        p.resolve(m.value);
        return;
      case "error":
        p.reject(deserializeError(m.error));
        return;
    }
  }

  private post(m: WorkerRequest): void {
    this.worker.postMessage(m);
  }

  private checkAlive(): void {
    if (this.dead) throw this.dead;
  }

  private fail(e: Error): void {
    this.dead = e;
    for (const p of [...this.pending.values()]) p.reject(e);
    this.pending.clear();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function absolute(url: string | URL): string {
  // The worker would resolve a relative URL against worker.js, not against the page.
  return new URL(url, globalThis.location?.href).href;
}

function toSpec(source: ModelSource): ModelSourceSpec {
  if (typeof source === "string" || source instanceof URL) return { kind: "url", url: absolute(source) };
  if (typeof Blob !== "undefined" && source instanceof Blob) return { kind: "file", file: source };
  const spec = source as ModelSourceSpec;
  return spec.kind === "url" ? { ...spec, url: absolute(spec.url) } : spec;
}
