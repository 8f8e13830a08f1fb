import type { ServerResponse } from "node:http";
import { randomBytes } from "node:crypto";
import type { GenerateOptions, GeneratedToken, GenerationStats, LanguageModel } from "@flashllm/sdk";
import { sendError, toApiError } from "./errors.js";
import { flashSnapshot, responseFigures } from "./figures.js";
import type { GenerationQueue } from "./queue.js";
import type { SamplingParams } from "./requests.js";
import { openAiFinish, usage, type ResponseShape } from "./responses.js";
import { SseStream } from "./sse.js";

/** What the server reports as requests come and go (the CLI logs these; tests watch them). */
export type ServeEvent =
  /** The request is in line for the model (`waiting` requests, itself included), or about to be refused with 429. */
  | { type: "queued"; id: string; waiting: number }
  | { type: "start"; id: string }
  | { type: "end"; id: string; finishReason: GenerationStats["finishReason"] | "refused"; promptTokens: number; generatedTokens: number; status: number }
  /** A request answered with an error before it reached the queue (bad body, key, route, model, prompt). */
  | { type: "rejected"; method: string; path: string; status: number; code: string | null };

/** A request's prompt, checked, and how to start its generation once the model is ours. */
export interface TurnPrompt {
  /** Its length in tokens (for the logs; `usage` comes from the generation's figures). */
  promptTokens: number;
  /** Starts the generation: `model.generate` for completions, `model.chat` for chat. */
  start(opts: GenerateOptions): AsyncGenerator<GeneratedToken, GenerationStats>;
}

export interface TurnContext {
  model: LanguageModel;
  modelId: string;
  queue: GenerationQueue;
  emit: (e: ServeEvent) => void;
}

let counter = 0;
/** A response id: prefix, a per-process random part and a counter. */
const RUN = randomBytes(4).toString("hex");
function responseId(prefix: string): string {
  return `${prefix}${RUN}${(++counter).toString(36).padStart(6, "0")}`;
}

/**
 * Serves one generation: waits its turn for the model, generates, and answers as one JSON response or
 * as server-sent events. The client closing the connection (at any point: waiting, prompt, streaming)
 * aborts the generation within one layer, and the model goes to the next request as soon as the
 * generation has unwound.
 */
export async function serveTurn(ctx: TurnContext, res: ServerResponse, shape: ResponseShape, prompt: TurnPrompt, p: SamplingParams): Promise<void> {
  const id = responseId(shape.idPrefix);
  const created = Math.floor(Date.now() / 1000);
  const ac = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) ac.abort("client disconnected");
  };
  res.on("close", onClose);
  const t0 = performance.now();
  let release: (() => void) | undefined;
  let gen: AsyncGenerator<GeneratedToken, GenerationStats> | undefined;
  let sse: SseStream | undefined;
  let stats: GenerationStats | undefined;
  let started = false;
  let statsBefore: GenerationStats | undefined;
  let status = 200;
  try {
    const turn = ctx.queue.acquire(ac.signal); // in line (or refused) from here on
    ctx.emit({ type: "queued", id, waiting: ctx.queue.length });
    release = await turn;
    const queueMs = performance.now() - t0;
    ctx.emit({ type: "start", id });
    const before = flashSnapshot(ctx.model);
    statsBefore = ctx.model.lastStats;
    started = true;
    gen = prompt.start({ maxTokens: p.maxTokens, temperature: p.temperature, topP: p.topP, seed: p.seed, signal: ac.signal });
    let r = await gen.next(); // errors before the first token still get a JSON answer with their status
    if (p.stream) {
      sse = new SseStream(res);
      if (shape.opening) await sse.send(shape.opening(id, created, ctx.modelId));
      while (!r.done) {
        if (r.value.text) await sse.send(shape.chunk(id, created, ctx.modelId, r.value.text, null));
        r = await gen.next();
      }
      stats = r.value;
      const last = shape.chunk(id, created, ctx.modelId, "", openAiFinish(stats.finishReason)) as Record<string, unknown>;
      last.flashllm = responseFigures(queueMs, stats, before, flashSnapshot(ctx.model));
      await sse.send(last);
      if (p.includeUsage) await sse.send({ id, object: shape.chunkObject, created, model: ctx.modelId, choices: [], usage: usage(stats.promptTokens, stats.generatedTokens) });
      await sse.done();
    } else {
      let text = "";
      while (!r.done) {
        text += r.value.text;
        r = await gen.next();
      }
      stats = r.value;
      const figures = responseFigures(queueMs, stats, before, flashSnapshot(ctx.model));
      const body = JSON.stringify(shape.whole(id, created, ctx.modelId, text, openAiFinish(stats.finishReason), usage(stats.promptTokens, stats.generatedTokens), figures));
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    }
  } catch (e) {
    const err = toApiError(e);
    status = ac.signal.aborted ? 499 : err.status;
    if (sse) {
      // Headers are gone: report in-band as OpenAI does, then end the stream.
      if (!sse.closed) {
        await sse.send(err.body());
        await sse.done();
      }
    } else if (!ac.signal.aborted) sendError(res, err);
  } finally {
    // Unwind the generation before the model goes to the next request.
    await gen?.return(undefined as never).catch(() => undefined);
    release?.();
    res.off("close", onClose);
    // A generation that failed or was aborted leaves its figures in lastStats (a new object); one that
    // never started leaves the previous request's there.
    const s = stats ?? (started && ctx.model.lastStats !== statsBefore ? ctx.model.lastStats : undefined);
    ctx.emit({
      type: "end",
      id,
      status,
      finishReason: ac.signal.aborted ? "aborted" : release ? (stats?.finishReason ?? "error") : "refused",
      promptTokens: prompt.promptTokens,
      generatedTokens: s?.generatedTokens ?? 0,
    });
  }
}
