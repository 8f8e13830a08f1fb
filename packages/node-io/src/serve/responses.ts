import type { FinishReason } from "@flashllm/sdk";
import type { ResponseFigures } from "./figures.js";

/** OpenAI's finish_reason: "stop" for an end token or stop string, "length" for max_tokens or a full context. */
export function openAiFinish(r: FinishReason): "stop" | "length" {
  return r === "maxTokens" || r === "contextFull" ? "length" : "stop";
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function usage(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** What differs between /v1/completions and /v1/chat/completions: ids, object names and choice shapes. */
export interface ResponseShape {
  idPrefix: string;
  /** A whole (non-streamed) response. */
  whole(id: string, created: number, model: string, text: string, finish: "stop" | "length", u: Usage, figures: ResponseFigures): object;
  /** One streamed chunk of text, or the last one (with the finish reason and no text). */
  chunk(id: string, created: number, model: string, text: string, finish: "stop" | "length" | null): object;
  /** A first chunk before any text (the chat's assistant role), if the shape has one. */
  opening?(id: string, created: number, model: string): object;
  /** The object name of chunks. */
  chunkObject: string;
}

export const completionShape: ResponseShape = {
  idPrefix: "cmpl-",
  chunkObject: "text_completion",
  whole: (id, created, model, text, finish, u, figures) => ({
    id,
    object: "text_completion",
    created,
    model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
    usage: u,
    flashllm: figures,
  }),
  chunk: (id, created, model, text, finish) => ({
    id,
    object: "text_completion",
    created,
    model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
  }),
};

export const chatShape: ResponseShape = {
  idPrefix: "chatcmpl-",
  chunkObject: "chat.completion.chunk",
  whole: (id, created, model, text, finish, u, figures) => ({
    id,
    object: "chat.completion",
    created,
    model,
    choices: [{ index: 0, message: { role: "assistant", content: text }, logprobs: null, finish_reason: finish }],
    usage: u,
    flashllm: figures,
  }),
  chunk: (id, created, model, text, finish) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [{ index: 0, delta: finish ? {} : { content: text }, logprobs: null, finish_reason: finish }],
  }),
  opening: (id, created, model) => ({
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
  }),
};
