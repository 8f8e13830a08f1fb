import type { IncomingMessage, ServerResponse } from "node:http";
import { stopAtText, type GenerateOptions } from "@flashllm/sdk/internal";
import { checkApiKey } from "./auth.js";
import { readJsonBody } from "./body.js";
import { ApiError, badParam, toApiError } from "./errors.js";
import { chatParams, checkModel, completionParams } from "./requests.js";
import { chatShape, completionShape } from "./responses.js";
import { serveTurn, type TurnContext } from "./turn.js";

export interface RouteContext extends TurnContext {
  apiKey: string | undefined;
  maxBodyBytes: number;
  /** Unix time the server started (the model's `created`). */
  created: number;
}

/**
 * The API: `GET /v1/models`, `GET /v1/models/{id}`, `POST /v1/completions`, `POST /v1/chat/completions`.
 * The key is checked before the body is read; request errors are thrown as ApiErrors for the server
 * to answer.
 */
export async function route(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? "/", "http://localhost").pathname.replace(/\/+$/, "");
  const method = req.method ?? "GET";
  const endpoint = ENDPOINTS.find((e) => e.match(path));
  if (!endpoint) throw new ApiError(404, `no route ${method} ${path}: this server answers GET /v1/models, POST /v1/completions and POST /v1/chat/completions`, "invalid_request_error", "unknown_url");
  if (endpoint.method !== method) throw new ApiError(405, `${path} takes ${endpoint.method}, not ${method}`, "invalid_request_error", "method_not_allowed", null, { allow: endpoint.method });
  if (ctx.apiKey !== undefined) checkApiKey(req.headers.authorization, ctx.apiKey);
  await endpoint.handle(ctx, req, res, path);
}

interface Endpoint {
  method: "GET" | "POST";
  match(path: string): boolean;
  handle(ctx: RouteContext, req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
}

const modelObject = (ctx: RouteContext) => ({ id: ctx.modelId, object: "model", created: ctx.created, owned_by: "flashllm" });

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const ENDPOINTS: Endpoint[] = [
  {
    method: "GET",
    match: (p) => p === "/v1/models",
    handle: async (ctx, _req, res) => sendJson(res, { object: "list", data: [modelObject(ctx)] }),
  },
  {
    method: "GET",
    match: (p) => p.startsWith("/v1/models/"),
    handle: async (ctx, _req, res, path) => {
      checkModel(decodeURIComponent(path.slice("/v1/models/".length)), ctx.modelId);
      sendJson(res, modelObject(ctx));
    },
  },
  {
    method: "POST",
    match: (p) => p === "/v1/completions",
    handle: async (ctx, req, res) => {
      const p = completionParams(await readJsonBody(req, ctx.maxBodyBytes));
      checkModel(p.model, ctx.modelId);
      // Encoded (and checked against the context) before the request waits for the model.
      const tokens = asPromptError("prompt", () => (typeof p.prompt === "string" ? ctx.model.encodePrompt(p.prompt) : checkTokenIds(ctx, p.prompt)));
      const start = (o: GenerateOptions) => (p.stop.length ? stopAtText(ctx.model.generate(tokens, o), p.stop, () => ctx.model.lastStats) : ctx.model.generate(tokens, o));
      await serveTurn(ctx, res, completionShape, { promptTokens: tokens.length, start }, p);
    },
  },
  {
    method: "POST",
    match: (p) => p === "/v1/chat/completions",
    handle: async (ctx, req, res) => {
      const p = chatParams(await readJsonBody(req, ctx.maxBodyBytes));
      checkModel(p.model, ctx.modelId);
      // Rendered here to refuse a bad template or an over-long prompt before waiting; chat renders it again.
      const promptTokens = asPromptError("messages", () => ctx.model.chatPrompt(p.messages)).tokens.length;
      await serveTurn(ctx, res, chatShape, { promptTokens, start: (o) => ctx.model.chat(p.messages, { ...o, stop: p.stop }) }, p);
    },
  },
];

/** Runs prompt preparation; the SDK's errors about the prompt become 400s naming `param`. */
function asPromptError<T>(param: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw toApiError(e, param);
  }
}

/** A prompt of token ids: each an id of the model's vocabulary, and no more than the context holds. */
function checkTokenIds(ctx: RouteContext, ids: number[]): number[] {
  const vocab = ctx.model.config.vocabSize;
  const bad = ids.findIndex((id) => !(Number.isInteger(id) && id >= 0 && id < vocab));
  if (bad >= 0) throw badParam("prompt", `prompt[${bad}] is ${ids[bad]}, not a token id of this model (0 to ${vocab - 1})`);
  const ctxLen = ctx.model.transformer.contextLength;
  if (ids.length > ctxLen) throw new ApiError(400, `the prompt is ${ids.length} tokens but the context holds ${ctxLen}`, "invalid_request_error", "context_length_exceeded", "prompt");
  return ids;
}
