import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { FlashError, type LanguageModel } from "@flashllm/sdk";
import { sendError, toApiError } from "./errors.js";
import { GenerationQueue } from "./queue.js";
import { route, type RouteContext } from "./routes.js";
import type { ServeEvent } from "./turn.js";

/** Options of {@link startServer}. */
export interface ServeOptions {
  /** The model to serve (opened by the caller, who also disposes it after `close`). */
  model: LanguageModel;
  /** Its id in the API (`model` of requests, `GET /v1/models`). */
  modelId: string;
  /** Address to bind. Default 127.0.0.1: only this machine can connect. */
  host?: string;
  /** Port; 0 picks a free one. Default 8080. */
  port?: number;
  /** Requests must send `Authorization: Bearer <apiKey>`. Default: no key. */
  apiKey?: string;
  /** Requests that may wait for the model behind the one running; more get 429. Default 16. */
  maxQueue?: number;
  /** Largest request body, bytes; larger ones get 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /** Called as requests are queued, start and end. */
  onEvent?: (e: ServeEvent) => void;
}

/** A running server. */
export interface FlashServer {
  /** `http://host:port`; the API is under `/v1`. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** Requests waiting and running now. */
  readonly queue: GenerationQueue;
  /** Stops accepting connections, aborts what runs, and resolves when every request has ended. */
  close(): Promise<void>;
}

/**
 * Starts an OpenAI-compatible HTTP server for one model: `GET /v1/models`, `POST /v1/completions`,
 * `POST /v1/chat/completions` (streaming as server-sent events), one generation at a time.
 */
export async function startServer(o: ServeOptions): Promise<FlashServer> {
  const host = o.host ?? "127.0.0.1";
  const maxQueue = o.maxQueue ?? 16;
  const maxBodyBytes = o.maxBodyBytes ?? 1024 * 1024;
  if (!(Number.isSafeInteger(maxQueue) && maxQueue >= 0)) throw new FlashError("BAD_ARGUMENT", `maxQueue must be an integer ≥ 0, got ${maxQueue}`);
  if (!(Number.isSafeInteger(maxBodyBytes) && maxBodyBytes >= 1)) throw new FlashError("BAD_ARGUMENT", `maxBodyBytes must be an integer ≥ 1, got ${maxBodyBytes}`);
  if (o.apiKey !== undefined && o.apiKey.length === 0) throw new FlashError("BAD_ARGUMENT", "the API key must not be empty");
  const queue = new GenerationQueue(maxQueue);
  const ctx: RouteContext = {
    model: o.model,
    modelId: o.modelId,
    queue,
    emit: o.onEvent ?? (() => undefined),
    apiKey: o.apiKey,
    maxBodyBytes,
    created: Math.floor(Date.now() / 1000),
  };
  const inFlight = new Set<Promise<void>>();
  const server: Server = createServer((req, res) => {
    const work = route(ctx, req, res)
      .catch((e: unknown) => {
        const err = toApiError(e);
        ctx.emit({ type: "rejected", method: req.method ?? "", path: (req.url ?? "").split("?")[0], status: err.status, code: err.code });
        sendError(res, err);
        // A refused request's body may still be arriving: read and drop it so the client gets the answer.
        if (!req.readableEnded) req.resume();
      })
      .finally(() => inFlight.delete(work));
    inFlight.add(work);
  });
  // A client that stops sending its headers or body must not hold a connection for ever.
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 8080, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${shownHost}:${addr.port}`,
    port: addr.port,
    host: addr.address,
    queue,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Cutting the connections aborts running and waiting generations (their `close` handlers).
      server.closeAllConnections();
      await Promise.allSettled([...inFlight]);
      await closed;
    },
  };
}
