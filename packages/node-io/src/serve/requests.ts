import { MAX_STOP_LENGTH, MAX_STOP_STRINGS, type ChatMessage } from "@flashllm/sdk/internal";
import { ApiError, badParam } from "./errors.js";

/**
 * Validation of the OpenAI request bodies the server answers. Every known field is checked for its
 * type and range and reported as a 400 naming the field (`param`); fields the server does not know
 * are ignored, as OpenAI's newer fields are by older servers; features it does not have (n > 1,
 * logprobs, tools, penalties, echo) are refused rather than silently dropped.
 */

/** Sampling and streaming parameters shared by both endpoints. */
export interface SamplingParams {
  /** The model the client named. */
  model: string;
  /** New tokens at most (undefined: until a stop or the end of the context). */
  maxTokens: number | undefined;
  temperature: number;
  topP: number;
  /** Positive seed for the sampler (undefined: time-based). */
  seed: number | undefined;
  stop: string[];
  stream: boolean;
  /** `stream_options.include_usage`: a last chunk with the usage counts. */
  includeUsage: boolean;
}

export interface CompletionParams extends SamplingParams {
  /** Text, or token ids used as they are. */
  prompt: string | number[];
}

export interface ChatParams extends SamplingParams {
  messages: ChatMessage[];
}

/** OpenAI's default for /v1/completions when max_tokens is absent. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

type Body = Record<string, unknown>;
const present = (v: unknown) => v !== undefined && v !== null;
const show = (v: unknown) => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

function number(b: Body, key: string, min: number, max: number, fallback: number): number {
  const v = b[key];
  if (!present(v)) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) throw badParam(key, `${key} must be a number from ${min} to ${max}, got ${show(v)}`);
  return v;
}

function integer(b: Body, key: string, min: number, max: number): number | undefined {
  const v = b[key];
  if (!present(v)) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) throw badParam(key, `${key} must be an integer from ${min} to ${max}, got ${show(v)}`);
  return v;
}

function boolean(b: Body, key: string): boolean {
  const v = b[key];
  if (!present(v)) return false;
  if (typeof v !== "boolean") throw badParam(key, `${key} must be true or false, got ${show(v)}`);
  return v;
}

/** Refuses a field whose value asks for something the server does not do. */
function unsupported(b: Body, key: string, allowed: (v: unknown) => boolean, what: string): void {
  const v = b[key];
  if (present(v) && !allowed(v)) throw badParam(key, `${key} ${show(v)} is not supported by flashllm serve (${what})`, "unsupported_value");
}

function sampling(b: Body, defaultMaxTokens: number | undefined): SamplingParams {
  if (typeof b.model !== "string" || b.model === "") throw badParam("model", `model must be a non-empty string (the id GET /v1/models lists), got ${show(b.model)}`);
  const stopRaw = b.stop;
  let stop: string[] = [];
  if (typeof stopRaw === "string") stop = [stopRaw];
  else if (Array.isArray(stopRaw)) stop = stopRaw as string[];
  else if (present(stopRaw)) throw badParam("stop", `stop must be a string or an array of strings, got ${show(stopRaw)}`);
  if (stop.length > MAX_STOP_STRINGS) throw badParam("stop", `stop has ${stop.length} strings; at most ${MAX_STOP_STRINGS}`);
  for (const s of stop) {
    if (typeof s !== "string" || s.length === 0 || s.length > MAX_STOP_LENGTH) throw badParam("stop", `each stop string must be a string of 1 to ${MAX_STOP_LENGTH} characters, got ${show(s)}`);
  }
  const so = b.stream_options;
  if (present(so) && (typeof so !== "object" || Array.isArray(so))) throw badParam("stream_options", `stream_options must be an object, got ${show(so)}`);
  const includeUsage = present(so) ? boolean(so as Body, "include_usage") : false;
  unsupported(b, "n", (v) => v === 1, "one choice per request");
  unsupported(b, "logprobs", (v) => v === false || v === 0, "no log-probabilities");
  unsupported(b, "top_logprobs", (v) => v === 0, "no log-probabilities");
  unsupported(b, "presence_penalty", (v) => v === 0, "no repetition penalties");
  unsupported(b, "frequency_penalty", (v) => v === 0, "no repetition penalties");
  unsupported(b, "logit_bias", (v) => typeof v === "object" && Object.keys(v as object).length === 0, "no logit bias");
  const seed = integer(b, "seed", 0, Number.MAX_SAFE_INTEGER);
  const maxTokens = integer(b, "max_completion_tokens", 0, 1 << 30) ?? integer(b, "max_tokens", 0, 1 << 30) ?? defaultMaxTokens;
  return {
    model: b.model,
    maxTokens,
    temperature: number(b, "temperature", 0, 2, 1),
    topP: number(b, "top_p", 0, 1, 1),
    // The sampler's RNG needs a seed ≥ 1; OpenAI allows 0, which maps to 2^53-1 (any fixed value would do).
    seed: seed === 0 ? Number.MAX_SAFE_INTEGER : seed,
    stop,
    stream: boolean(b, "stream"),
    includeUsage,
  };
}

/** A /v1/completions body. */
export function completionParams(b: Body): CompletionParams {
  const p = b.prompt;
  let prompt: string | number[];
  if (typeof p === "string") prompt = p;
  else if (Array.isArray(p) && p.length === 1 && typeof p[0] === "string") prompt = p[0];
  else if (Array.isArray(p) && p.length > 0 && p.every((t) => typeof t === "number")) prompt = p as number[];
  else if (Array.isArray(p) && p.length === 1 && Array.isArray(p[0]) && p[0].length > 0 && p[0].every((t: unknown) => typeof t === "number")) prompt = p[0] as number[];
  else throw badParam("prompt", `prompt must be a string or an array of token ids (one prompt per request), got ${show(p)}`);
  unsupported(b, "echo", (v) => v === false, "the prompt is not echoed");
  unsupported(b, "suffix", (v) => v === "", "no insertion");
  unsupported(b, "best_of", (v) => v === 1, "one choice per request");
  return { ...sampling(b, COMPLETIONS_DEFAULT_MAX_TOKENS), prompt };
}

const ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);

/** A /v1/chat/completions body; message content may be a string or an array of text parts. */
export function chatParams(b: Body): ChatParams {
  const m = b.messages;
  if (!Array.isArray(m) || m.length === 0) throw badParam("messages", `messages must be a non-empty array of { role, content }, got ${show(m)}`);
  const messages = m.map((raw, i): ChatMessage => {
    const param = `messages[${i}]`;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw badParam(param, `${param} must be an object { role, content }, got ${show(raw)}`);
    const { role, content } = raw as Body;
    if (typeof role !== "string" || !ROLES.has(role)) throw badParam(`${param}.role`, `${param}.role must be one of ${[...ROLES].join(", ")}, got ${show(role)}`);
    return { role, content: messageText(content, `${param}.content`) };
  });
  for (const key of ["tools", "functions", "tool_choice", "function_call", "response_format", "audio", "modalities"]) {
    const allowed = key === "response_format" ? (v: unknown) => (v as Body)?.type === "text" : (v: unknown) => Array.isArray(v) && v.length === 0;
    unsupported(b, key, allowed, key === "response_format" ? "plain text only" : "no tool calls, audio or structured output");
  }
  return { ...sampling(b, undefined), messages };
}

/** Message content: a string, null (an empty turn) or an array of `{ type: "text", text }` parts. */
function messageText(c: unknown, param: string): string {
  if (typeof c === "string") return c;
  if (c === null) return "";
  if (Array.isArray(c)) {
    return c
      .map((part, j) => {
        const p = part as Body;
        if (typeof p !== "object" || p === null || p.type !== "text" || typeof p.text !== "string") {
          throw badParam(`${param}[${j}]`, `${param}[${j}] must be a text part { type: "text", text }, got ${show(part)}`, p?.type === "image_url" ? "unsupported_value" : "invalid_value");
        }
        return p.text;
      })
      .join("");
  }
  throw badParam(param, `${param} must be a string or an array of text parts, got ${show(c)}`);
}

/** The model named in a request must be the one served. */
export function checkModel(requested: string, served: string): void {
  if (requested !== served) throw new ApiError(404, `the model \`${requested}\` does not exist: this server serves \`${served}\` (GET /v1/models)`, "invalid_request_error", "model_not_found", "model");
}
