import { AbortedError, FlashError, throwIfAborted } from "./errors.js";
import type { Kernels } from "./kernels/loader.js";
import type { ModelConfig } from "./model/config.js";
import type { FfnBackend } from "./model/ffn.js";
import type { ForwardPass } from "./model/forward-pass.js";
import type { WeightStore } from "./model/weights.js";
import type { SamplingOptions } from "./sampler.js";
import { Sampler } from "./sampler.js";
import type { Tokenizer } from "./tokenizer/tokenizer.js";
import type { ChatPrompt } from "./chat/prompt.js";
import { chatPrompt } from "./chat/prompt.js";
import { stopAtText } from "./chat/stop-text.js";
import type { ChatMessage } from "./chat/template.js";
import { ChatTemplate } from "./chat/template.js";

/** Options of one {@link LanguageModel.generate} call. */
export interface GenerateOptions extends SamplingOptions {
  /** New tokens to generate after the prompt. Default: until the context is full. */
  maxTokens?: number;
  /** Cancels generation; the iterator then throws `AbortedError` and the model stays usable. */
  signal?: AbortSignal;
  /** Token ids that end generation (not yielded). Default: the tokenizer's (BOS for llama2.c models, as run.c does). */
  stopTokens?: readonly number[];
}

/** Options of one {@link LanguageModel.chat} call. */
export interface ChatOptions extends GenerateOptions {
  /** More text that ends the reply (not included in it), besides the template's end-of-turn markers. */
  stop?: readonly string[];
  /** A Jinja chat template to use instead of the model's own. */
  template?: string;
}

/** One generated token. */
export interface GeneratedToken {
  /** Token id. */
  token: number;
  /** The text this token completes (UTF-8 sequences split across byte tokens are joined). */
  text: string;
  /** Position the token will occupy in the context. */
  position: number;
}

/**
 * Why the last generation ended. `stopString`: a stop string of `chat` was generated; `cancelled`: the
 * consumer stopped iterating (`break`, `return`) before the end.
 */
export type FinishReason = "maxTokens" | "stopToken" | "stopString" | "contextFull" | "aborted" | "cancelled" | "error";

/** Figures about the last generation, for the CLI's stats line and benchmarks. */
export interface GenerationStats {
  promptTokens: number;
  generatedTokens: number;
  /** Wall time of prompt processing and of generation, milliseconds. */
  promptMs: number;
  generateMs: number;
  /** Generated tokens per second (prompt excluded). */
  tokensPerSecond: number;
  finishReason: FinishReason;
}

/**
 * A loaded model ready to generate: tokenizer, transformer and an FFN backend sharing one WASM memory.
 * One generation runs at a time; a second concurrent call is refused with a `BUSY` error.
 */
export class LanguageModel {
  /** The chat template `chat` renders (Jinja); set from the `.flm` manifest's `chatTemplate` when it has one. */
  chatTemplate: string | undefined;
  private running = false;
  private readonly disposers: (() => void | Promise<void>)[] = [];
  private _lastStats: GenerationStats | undefined;
  private compiledTemplate: ChatTemplate | undefined;

  constructor(
    /** The kernels and the WASM memory the model lives in. */
    readonly kernels: Kernels,
    /** The forward pass: one instance (`Transformer`), or a coordinator of shards. */
    readonly transformer: ForwardPass,
    readonly tokenizer: Tokenizer,
    readonly ffn: FfnBackend,
    private readonly weights: WeightStore,
  ) {}

  get config(): ModelConfig {
    return this.transformer.config;
  }

  /** Figures of the last finished generation. */
  get lastStats(): GenerationStats | undefined {
    return this._lastStats;
  }

  /** Size of the WASM memory holding the model's weights, caches and scratch. */
  get wasmMemoryBytes(): number {
    return this.kernels.memoryBytes;
  }

  /**
   * Tokenizes a prompt as run.c does (BOS, then the text); token ids are taken as they are. Throws
   * CONTEXT_OVERFLOW if it cannot fit.
   */
  encodePrompt(prompt: string | readonly number[]): number[] {
    const tokens = typeof prompt === "string" ? this.tokenizer.encode(prompt, true, false) : [...prompt];
    if (tokens.length === 0) throw new FlashError("BAD_ARGUMENT", "the prompt has no tokens: give at least BOS");
    const bad = tokens.find((t) => !(Number.isInteger(t) && t >= 0 && t < this.config.vocabSize));
    if (bad !== undefined) throw new FlashError("BAD_ARGUMENT", `prompt token ${bad} is outside the vocabulary of ${this.config.vocabSize}`);
    const ctx = this.transformer.contextLength;
    if (tokens.length > ctx) {
      throw new FlashError("CONTEXT_OVERFLOW", `the prompt is ${tokens.length} tokens but the context holds ${ctx}`, { promptTokens: tokens.length, contextLength: ctx });
    }
    return tokens;
  }

  /** Checks prompt token ids given directly: 1 to contextLength integers of the vocabulary. */
  private checkPromptTokens(ids: readonly number[]): number[] {
    const ctx = this.transformer.contextLength;
    if (!Array.isArray(ids) || ids.length === 0) throw new FlashError("BAD_ARGUMENT", "a prompt of token ids needs at least one id");
    if (ids.length > ctx) throw new FlashError("CONTEXT_OVERFLOW", `the prompt is ${ids.length} tokens but the context holds ${ctx}`, { promptTokens: ids.length, contextLength: ctx });
    const vocab = this.config.vocabSize;
    ids.forEach((id, i) => {
      if (!(Number.isInteger(id) && id >= 0 && id < vocab)) throw new FlashError("BAD_ARGUMENT", `prompt token ${i} is ${String(id)}, not an id in [0, ${vocab})`, { index: i });
    });
    return [...ids];
  }

  /**
   * The prompt `chat` would generate from: `messages` rendered with the chat template (`template`, else
   * the model's), as token ids, with the template's stop tokens and texts. Throws NO_CHAT_TEMPLATE when
   * there is no template, BAD_CHAT_TEMPLATE when it fails, CONTEXT_OVERFLOW when the prompt cannot fit.
   */
  chatPrompt(messages: readonly ChatMessage[], template?: string): ChatPrompt {
    const source = template ?? this.chatTemplate;
    if (source === undefined) {
      throw new FlashError("NO_CHAT_TEMPLATE", "this model has no chat template: convert it from a folder whose tokenizer_config.json has chat_template, or pass one (template option, flashllm serve --chat-template)");
    }
    if (this.compiledTemplate?.source !== source) this.compiledTemplate = new ChatTemplate(source);
    const p = chatPrompt(this.tokenizer, this.compiledTemplate, messages);
    this.checkPromptTokens(p.tokens);
    return p;
  }

  /**
   * Streams the model's reply to a conversation, like {@link generate}: the messages are rendered with
   * the chat template, and the reply ends at the tokenizer's EOS, the template's end-of-turn markers,
   * `opts.stop` strings, `maxTokens` or the end of the context.
   */
  async *chat(messages: readonly ChatMessage[], opts: ChatOptions = {}): AsyncGenerator<GeneratedToken, GenerationStats> {
    const p = this.chatPrompt(messages, opts.template);
    const stop = [...p.stopText, ...(opts.stop ?? [])];
    const stats = yield* stopAtText(this.generate(p.tokens, { ...opts, stopTokens: opts.stopTokens ?? p.stopTokens }), stop, () => this._lastStats);
    this._lastStats = stats;
    return stats;
  }

  /**
   * Streams the continuation of `prompt` (text, or token ids used as they are), token by token.
   * Positions start at 0 with every call (the KV cache is rewritten). Throws `AbortedError` when
   * `signal` fires and `BUSY` if another call is running.
   */
  async *generate(prompt: string | readonly number[], opts: GenerateOptions = {}): AsyncGenerator<GeneratedToken, GenerationStats> {
    if (this.running) throw new FlashError("BUSY", "a generation is already running on this model; await it or abort it first");
    const sampler = new Sampler(opts);
    const promptTokens = typeof prompt === "string" ? this.encodePrompt(prompt) : this.checkPromptTokens(prompt);
    const maxTokens = opts.maxTokens ?? Infinity;
    if (!(maxTokens >= 0)) throw new FlashError("BAD_ARGUMENT", `maxTokens must be ≥ 0, got ${opts.maxTokens}`);
    const stop = new Set(opts.stopTokens ?? this.tokenizer.defaultStopTokens);
    const ctx = this.transformer.contextLength;
    const decoder = new TextDecoder();
    const t0 = performance.now();
    let tFirst = 0; // when the first new token was sampled: prompt time before, generation time after
    let generated = 0;
    // Stays "cancelled" only if the consumer leaves the loop at a yield (the finally below runs then).
    let finishReason: FinishReason = "cancelled";
    this.running = true;
    try {
      let token = promptTokens[0];
      for (let pos = 0; ; pos++) {
        throwIfAborted(opts.signal);
        const inPrompt = pos < promptTokens.length - 1;
        if (!inPrompt && generated >= maxTokens) {
          finishReason = "maxTokens";
          break;
        }
        if (pos >= ctx) {
          finishReason = "contextFull";
          break;
        }
        const logits = await this.transformer.forward(token, pos, opts.signal);
        if (inPrompt) {
          token = promptTokens[pos + 1];
          continue;
        }
        const next = sampler.sample(logits);
        // Logits with NaN in them (NaN or infinite weights) leave the sampler without a token: say so
        // before yielding, rather than yield an undefined token and fail one step later.
        if (!(Number.isInteger(next) && next >= 0 && next < logits.length)) {
          throw new FlashError("BAD_ARGUMENT", `position ${pos}: the logits are not finite numbers (NaN or infinite weights in the model?), so no token can be sampled`, {
            position: pos,
            reason: "non-finite logits",
          });
        }
        if (generated === 0) tFirst = performance.now();
        if (stop.has(next)) {
          finishReason = "stopToken";
          break;
        }
        generated++;
        const text = decoder.decode(this.tokenizer.pieceBytes(token, next), { stream: true });
        token = next;
        yield { token: next, text, position: pos + 1 };
      }
    } catch (e) {
      finishReason = e instanceof AbortedError ? "aborted" : "error";
      throw e;
    } finally {
      this.running = false;
      const end = performance.now();
      if (tFirst === 0) tFirst = end;
      const generateMs = end - tFirst;
      this._lastStats = {
        promptTokens: promptTokens.length,
        generatedTokens: generated,
        promptMs: tFirst - t0,
        generateMs,
        // The first token's time is prompt time; rate counts the tokens after it.
        tokensPerSecond: generated > 1 && generateMs > 0 ? ((generated - 1) * 1000) / generateMs : 0,
        finishReason,
      };
    }
    return this._lastStats;
  }

  /** Runs `fn` at the end of {@link dispose}, after the model's memory is freed (e.g. closing the source it reads). */
  onDispose(fn: () => void | Promise<void>): void {
    this.disposers.push(fn);
  }

  /** Frees every WASM block the model holds. The model cannot be used afterwards. */
  async dispose(): Promise<void> {
    await this.transformer.dispose();
    await this.ffn.dispose();
    this.weights.dispose();
    for (const fn of this.disposers.splice(0)) await fn();
  }
}
