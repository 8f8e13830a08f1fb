import type { ServerResponse } from "node:http";
import { FlashError } from "@flashllm/sdk";

/**
 * An error answered in OpenAI's shape, `{ error: { message, type, param, code } }`, with its HTTP
 * status, so that OpenAI clients raise their usual typed errors (BadRequestError, AuthenticationError,
 * NotFoundError, RateLimitError…).
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = "invalid_request_error",
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers (Retry-After of a 429). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The response body. */
  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400 for a field of the request: what was expected and what came. */
export function badParam(param: string, message: string, code: string | null = "invalid_value"): ApiError {
  return new ApiError(400, message, "invalid_request_error", code, param);
}

/**
 * The API error for anything a request's handling threw: an ApiError as it is; the SDK's typed errors
 * that a request can cause (with `promptParam` naming the field a prompt error is about) (prompt over the context, a template that fails on these messages, a model
 * without a template, bad sampling values) as 400s; everything else as a 500 that names the error
 * without a stack.
 */
export function toApiError(e: unknown, promptParam: string | null = null): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof FlashError) {
    switch (e.code) {
      case "CONTEXT_OVERFLOW":
        return new ApiError(400, `${e.message}: shorten the prompt (the server's context is set by --context)`, "invalid_request_error", "context_length_exceeded", promptParam);
      case "NO_CHAT_TEMPLATE":
        return new ApiError(400, e.message, "invalid_request_error", "no_chat_template", "messages");
      case "BAD_CHAT_TEMPLATE":
        return new ApiError(400, `the model's chat template failed on these messages: ${e.message}`, "invalid_request_error", "chat_template_error", "messages");
      case "BAD_ARGUMENT":
      case "BAD_TOKENIZER":
        return new ApiError(400, e.message, "invalid_request_error", "invalid_value", promptParam);
      case "BUSY":
        return new ApiError(503, e.message, "server_error", "busy");
    }
    return new ApiError(500, `${e.name} [${e.code}]: ${e.message}`, "server_error", e.code.toLowerCase());
  }
  return new ApiError(500, `internal error: ${e instanceof Error ? e.message : String(e)}`, "server_error", "internal_error");
}

/** Answers `err` as JSON, unless the response has started (then the caller reports it in-band). */
export function sendError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(err.body());
  res.writeHead(err.status, { "content-type": "application/json", "content-length": Buffer.byteLength(body), ...err.headers });
  res.end(body);
}
