import type { IncomingMessage } from "node:http";
import { ApiError } from "./errors.js";

/** Bytes of an oversized body drained after the 413 (so the client reads the answer), before the connection is cut. */
const DRAIN_BYTES = 16 * 1024 * 1024;

/**
 * Reads a request body of at most `limit` bytes and parses it as JSON. A larger body (by its
 * Content-Length, or as it arrives) is a 413 at once; the rest of it is read and dropped (up to
 * 16 MiB more, then the connection is closed), so the client gets the answer rather than a reset.
 * What is not JSON, or not an object, is a 400.
 */
export function readJsonBody(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const tooLarge = (n: string) => {
      req.off("data", onData);
      req.off("end", onEnd);
      let drained = 0;
      req.on("data", (c: Buffer) => {
        drained += c.length;
        if (drained > DRAIN_BYTES) req.destroy();
      });
      req.resume();
      reject(new ApiError(413, `request body of ${n} bytes is larger than the server's limit of ${limit} bytes (--max-body)`, "invalid_request_error", "request_too_large", null, { connection: "close" }));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) tooLarge(`more than ${limit}`);
      else chunks.push(c);
    };
    const onEnd = () => {
      try {
        resolve(parseBody(Buffer.concat(chunks, size)));
      } catch (e) {
        reject(e);
      }
    };
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) return tooLarge(String(declared));
    req.on("data", onData);
    req.on("end", onEnd);
    req.once("error", reject);
  });
}

function parseBody(bytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError(400, "request body is not valid UTF-8", "invalid_request_error", "invalid_json");
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `request body is not valid JSON: ${(e as Error).message}`, "invalid_request_error", "invalid_json");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new ApiError(400, "request body must be a JSON object", "invalid_request_error", "invalid_json");
  return json as Record<string, unknown>;
}
