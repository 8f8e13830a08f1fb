import type { ServerResponse } from "node:http";

/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per chunk and `data: [DONE]\n\n` at
 * the end. Writes wait for the socket to drain, so a slow client slows generation down instead of
 * piling chunks up in memory.
 */
export class SseStream {
  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.flushHeaders();
  }

  /** The client is gone: nothing more can be sent. */
  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Sends one event with `data` as JSON. */
  async send(data: unknown): Promise<void> {
    await this.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Sends `[DONE]` and ends the response. */
  async done(): Promise<void> {
    if (this.closed) return;
    await this.write("data: [DONE]\n\n");
    this.res.end();
  }

  private write(text: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.res.write(text)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.res.off("drain", done);
        this.res.off("close", done);
        resolve();
      };
      this.res.on("drain", done);
      this.res.on("close", done);
    });
  }
}
