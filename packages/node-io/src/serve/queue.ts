import { ApiError } from "./errors.js";

interface Waiter {
  grant: () => void;
}

/**
 * One generation at a time on the model, the others waiting first come, first served. At most
 * `maxWaiting` wait: one more is refused with a 429 whose Retry-After is the expected wait (queue
 * length × the mean time of recent generations, at least 1 s). A waiter whose client leaves is
 * taken out of the line.
 */
export class GenerationQueue {
  private running = false;
  private readonly waiting: Waiter[] = [];
  /** Moving mean of how long a turn held the model, ms. */
  private meanTurnMs = 1000;

  constructor(readonly maxWaiting: number) {}

  /** Requests waiting now (the one running not counted). */
  get length(): number {
    return this.waiting.length;
  }

  get busy(): boolean {
    return this.running;
  }

  /** Waits for the model; returns the function that gives it back (call it exactly once). */
  async acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) throw new ApiError(499, "client closed the request", "invalid_request_error", "client_closed");
    if (this.running) {
      if (this.waiting.length >= this.maxWaiting) {
        const seconds = Math.max(1, Math.ceil(((this.waiting.length + 1) * this.meanTurnMs) / 1000));
        throw new ApiError(429, `the server is busy: ${this.waiting.length} requests are waiting for the model (--max-queue ${this.maxWaiting}); retry after ${seconds} s`, "rate_limit_error", "queue_full", null, {
          "retry-after": String(seconds),
        });
      }
      await new Promise<void>((grant, fail) => {
        const w: Waiter = { grant };
        const onAbort = () => {
          const i = this.waiting.indexOf(w);
          if (i >= 0) this.waiting.splice(i, 1);
          fail(new ApiError(499, "client closed the request", "invalid_request_error", "client_closed"));
        };
        w.grant = () => {
          signal.removeEventListener("abort", onAbort);
          grant();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.waiting.push(w);
      });
    }
    this.running = true;
    const start = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.meanTurnMs = 0.8 * this.meanTurnMs + 0.2 * (performance.now() - start);
      const next = this.waiting.shift();
      if (next) next.grant();
      else this.running = false;
    };
  }
}
