import { SourceError, throwIfAborted } from "@flashllm/sdk";
import type { FlashSource, ReadRequest } from "@flashllm/sdk";
import { describeNetworkFailure, diagnoseNetworkFailure } from "./network-error.js";
import { Limiter, abortedFrom, anySignal, checkRequest, formatBytes, runAll, sleep } from "./util.js";

/** Options of {@link HttpRangeSource.open}. */
export interface HttpRangeSourceOptions {
  /**
   * Range requests in flight at once, across all reads (default 6: what browsers open per host over
   * HTTP/1.1; more would only queue inside the browser, where aborting is less prompt).
   */
  maxInFlight?: number;
  /** Retries of a request after a 5xx/408/429 answer, a network error or a cut-off body (default 3). */
  retries?: number;
  /** First retry delay, doubled each time, with jitter (default 250 ms). */
  retryDelayMs?: number;
  /**
   * Requests of one `read` closer than this are fetched as one range (default 64 KiB): a round trip
   * costs more than the bytes of a small gap. The engine's ReadPlanner already merges neighbouring
   * neurons; this merges what it left apart.
   */
  mergeGapBytes?: number;
  /** Longer ranges are split into requests of this size, fetched in parallel (default 8 MiB). */
  maxRequestBytes?: number;
  /** Extra request headers (e.g. Authorization; note that cross-origin they cost a CORS preflight). */
  headers?: Record<string, string>;
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Cancels `open`. */
  signal?: AbortSignal;
}

/** Cumulative counters of an {@link HttpRangeSource}. */
export interface HttpRangeSourceStats {
  /** HTTP requests sent, retries included. */
  requests: number;
  /** Body bytes received. */
  bytes: number;
  /** Requests retried. */
  retries: number;
  /** ReadRequests served from the bytes fetched at open. */
  headHits: number;
}

/** Bytes fetched by `open`: the size probe doubles as the read of the header and manifest. */
const PROBE_BYTES = 64 * 1024;

/** One HTTP range and the parts of ReadRequests it fills. */
interface Span {
  start: number;
  end: number; // exclusive
  parts: { offset: number; target: Uint8Array }[]; // ascending, disjoint, inside [start, end)
}

/** A failure a retry may cure (5xx, network error, body cut short). */
class Transient extends Error {}

/**
 * A {@link FlashSource} over a `.flm` on a web server, read with single-range `Range` requests (no CORS
 * preflight needed for those). `open` checks that the server honours Range (206 with a matching
 * `Content-Range`) and remembers the file's validator (ETag, else Last-Modified); every later answer
 * must carry the same one. A server that ignores Range (200 with the whole body) or a file that changed
 * under us is a clear {@link SourceError}, and the body is cancelled at once rather than downloaded.
 *
 * Cross-origin servers must expose `Content-Range` (and `ETag`) with `Access-Control-Expose-Headers`,
 * or the sizes cannot be checked.
 */
export class HttpRangeSource implements FlashSource {
  readonly byteLength: number;
  /** Validator of the file as opened: an ETag, or `last-modified:<date>`, or undefined if the server sends neither. */
  readonly validator: string | undefined;
  private readonly counters: HttpRangeSourceStats = { requests: 0, bytes: 0, retries: 0, headHits: 0 };
  private readonly limiter: Limiter;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly mergeGap: number;
  private readonly maxRequest: number;
  private readonly headers: Record<string, string>;
  private readonly fetchFn: typeof fetch;
  private readonly closer = new AbortController();
  private closed = false;

  private constructor(
    /** The absolute URL read from. */
    readonly url: string,
    size: number,
    validator: string | undefined,
    private readonly head: Uint8Array,
    options: HttpRangeSourceOptions,
    counters: HttpRangeSourceStats,
  ) {
    this.byteLength = size;
    this.validator = validator;
    this.limiter = new Limiter(options.maxInFlight ?? 6);
    this.retries = options.retries ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 250;
    this.mergeGap = options.mergeGapBytes ?? 64 * 1024;
    this.maxRequest = options.maxRequestBytes ?? 8 * 1024 * 1024;
    this.headers = options.headers ?? {};
    this.fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
    Object.assign(this.counters, counters);
    if (!(this.maxRequest >= 1)) throw new RangeError(`maxRequestBytes must be ≥ 1, got ${options.maxRequestBytes}`);
  }

  /**
   * Fetches the first 64 KiB with a Range request to learn the size and validator and to check that
   * the server supports Range. Rejects with SourceError (server ignores Range, 404, no size) or
   * AbortedError.
   */
  static async open(url: string | URL, options: HttpRangeSourceOptions = {}): Promise<HttpRangeSource> {
    const abs = new URL(url, globalThis.location?.href).href;
    const counters: HttpRangeSourceStats = { requests: 0, bytes: 0, retries: 0, headHits: 0 };
    // A throwaway instance runs the probe with the same retry and validation code as every read.
    const probe = new HttpRangeSource(abs, Infinity, undefined, new Uint8Array(0), options, counters);
    const head = new Uint8Array(PROBE_BYTES);
    const got = await probe.fetchSpan({ start: 0, end: PROBE_BYTES, parts: [{ offset: 0, target: head }] }, options.signal, true);
    return new HttpRangeSource(abs, got.size, got.validator, head.subarray(0, Math.min(PROBE_BYTES, got.size)), options, probe.counters);
  }

  /** A snapshot of the counters. */
  get stats(): HttpRangeSourceStats {
    return { ...this.counters };
  }

  async read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    if (this.closed) {
      const r = requests[0] ?? { offset: 0, length: 0 };
      throw new SourceError(`${this.url} is closed: read of ${r.length} bytes at offset ${r.offset}`, r.offset, r.length);
    }
    const pending: ReadRequest[] = [];
    for (const r of requests) {
      checkRequest(r, this.byteLength, this.url);
      if (r.length === 0) continue;
      if (r.offset + r.length <= this.head.byteLength) {
        r.target.set(this.head.subarray(r.offset, r.offset + r.length));
        this.counters.headHits++;
      } else pending.push(r);
    }
    if (pending.length === 0) return;
    const cancel = new AbortController();
    const combined = anySignal([signal, cancel.signal, this.closer.signal]);
    await runAll(this.spans(pending), this.limiter, cancel, async (span) => {
      await this.fetchSpan(span, combined, false);
    });
    throwIfAborted(signal);
  }

  /** Cancels requests in flight; later reads reject. */
  async close(): Promise<void> {
    this.closed = true;
    this.closer.abort("source closed");
  }

  // Groups requests into ranges: neighbours within mergeGap share one request, long ones are split.
  private spans(requests: ReadRequest[]): Span[] {
    const sorted = [...requests].sort((a, b) => a.offset - b.offset);
    const spans: Span[] = [];
    let cur: Span | undefined;
    for (const r of sorted) {
      for (let o = 0; o < r.length; o += this.maxRequest) {
        const n = Math.min(this.maxRequest, r.length - o);
        const part = { offset: r.offset + o, target: r.target.subarray(o, o + n) };
        const end = part.offset + n;
        if (cur && part.offset >= cur.end && part.offset - cur.end <= this.mergeGap && end - cur.start <= this.maxRequest) {
          cur.parts.push(part);
          cur.end = end;
        } else {
          cur = { start: part.offset, end, parts: [part] };
          spans.push(cur);
        }
      }
    }
    return spans;
  }

  // One range with retries. `probing` accepts a shorter answer (file smaller than the probe) and learns the size.
  private async fetchSpan(span: Span, signal: AbortSignal | undefined, probing: boolean): Promise<{ size: number; validator?: string }> {
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw abortedFrom(signal);
      try {
        return await this.fetchOnce(span, signal, probing);
      } catch (e) {
        if (signal?.aborted) throw abortedFrom(signal);
        if (!(e instanceof Transient)) throw e;
        if (attempt >= this.retries) {
          throw new SourceError(`${e.message} (gave up after ${attempt + 1} attempts)`, span.start, span.end - span.start, { cause: e.cause ?? e });
        }
        this.counters.retries++;
        const delay = this.retryDelayMs * 2 ** attempt * (0.75 + Math.random() * 0.5);
        await sleep(delay, signal);
      }
    }
  }

  private async fetchOnce(span: Span, signal: AbortSignal | undefined, probing: boolean): Promise<{ size: number; validator?: string }> {
    const { start, end } = span;
    const length = end - start;
    const where = `bytes ${start}-${end - 1} of ${this.url}`;
    this.counters.requests++;
    let res: Response;
    try {
      res = await this.fetchFn(this.url, { headers: { ...this.headers, Range: `bytes=${start}-${end - 1}` }, signal, cache: "no-store" });
    } catch (e) {
      if (signal?.aborted) throw abortedFrom(signal);
      // No answer at all: a server that refuses this origin (CORS) stays refused, a host that is down may come back.
      const kind = await diagnoseNetworkFailure(this.url, this.fetchFn, signal);
      if (signal?.aborted) throw abortedFrom(signal);
      const message = describeNetworkFailure(kind, this.url, (e as Error)?.message ?? String(e));
      if (kind === "cors") throw new SourceError(message, start, length, { cause: e });
      throw new Transient(message, { cause: e });
    }
    const fail = (message: string): never => {
      void res.body?.cancel().catch(() => {});
      throw new SourceError(message, start, length);
    };
    if (res.status === 200) {
      const total = res.headers.get("content-length");
      fail(
        `the server ignored the Range request for ${where} and answered 200 with the whole file` +
          (total ? ` (${formatBytes(Number(total))})` : "") +
          `: flashllm reads models piece by piece and needs a server that supports HTTP Range requests (206 Partial Content). ` +
          `Nothing more was downloaded.`,
      );
    }
    if (res.status === 416 && probing) fail(`${this.url} is empty (the server answered 416 to a read of its first bytes)`);
    if (res.status === 416 || res.status === 412) fail(`${this.url} changed on the server: ${where} is no longer there (HTTP ${res.status}). Reload the model.`);
    if (res.status >= 500 || res.status === 408 || res.status === 429) {
      void res.body?.cancel().catch(() => {});
      throw new Transient(`the server answered HTTP ${res.status} ${res.statusText} to ${where}`);
    }
    if (res.status === 404) fail(`${this.url} was not found on the server (HTTP 404)`);
    if (res.status !== 206) fail(`the server answered HTTP ${res.status} ${res.statusText} to ${where}, expected 206 Partial Content`);

    const range = parseContentRange(res.headers.get("content-range"));
    let size = this.byteLength;
    let expectedEnd = end;
    if (probing) {
      if (!range) {
        fail(
          `the server answered ${where} without a readable Content-Range header, so the file's size is unknown ` +
            `(a cross-origin server must send "Access-Control-Expose-Headers: Content-Range, ETag")`,
        );
      }
      if (range!.total === undefined) fail(`the server did not tell the file's size for ${where} (Content-Range: ${res.headers.get("content-range")})`);
      size = range!.total!;
      expectedEnd = Math.min(end, size);
    }
    if (range) {
      if (range.start !== start || range.end !== expectedEnd) {
        fail(`the server sent bytes ${range.start}-${range.end - 1} when asked for ${where} (Content-Range: ${res.headers.get("content-range")})`);
      }
      if (!probing && range.total !== undefined && range.total !== this.byteLength) {
        fail(`${this.url} changed on the server: it was ${this.byteLength} bytes when opened, now ${range.total}. Reload the model.`);
      }
    }
    const validator = validatorOf(res.headers);
    if (!probing && this.validator !== undefined && validator !== undefined && validator !== this.validator) {
      fail(`${this.url} changed on the server since it was opened (${this.validator} → ${validator}): reading on would mix two versions of the model. Reload the model.`);
    }
    await this.copyBody(res, span, expectedEnd, where, signal);
    return { size, validator };
  }

  // Streams the body straight into the targets: one copy, no buffer of the whole range.
  private async copyBody(res: Response, span: Span, end: number, where: string, signal: AbortSignal | undefined): Promise<void> {
    const length = end - span.start;
    if (!res.body) throw new SourceError(`the server sent no body for ${where}`, span.start, length);
    const reader = res.body.getReader();
    let pos = span.start; // file offset of the next byte
    let p = 0; // first part not yet complete
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          if (signal?.aborted) throw abortedFrom(signal);
          throw new Transient(`the connection broke after ${pos - span.start} of ${length} bytes of ${where}`, { cause: e });
        }
        if (chunk.done) break;
        if (signal?.aborted) throw abortedFrom(signal);
        const bytes = chunk.value;
        this.counters.bytes += bytes.byteLength;
        if (pos + bytes.byteLength > end) {
          throw new SourceError(`the server sent more than the ${length} bytes asked for in ${where}`, span.start, length);
        }
        // Scatter [pos, pos + n) over the parts it overlaps; gap bytes between parts are dropped.
        const chunkEnd = pos + bytes.byteLength;
        while (p < span.parts.length) {
          const part = span.parts[p];
          const partEnd = part.offset + part.target.byteLength;
          const from = Math.max(pos, part.offset);
          const to = Math.min(chunkEnd, partEnd);
          if (from < to) part.target.set(bytes.subarray(from - pos, to - pos), from - part.offset);
          if (partEnd <= chunkEnd) p++;
          else break;
        }
        pos = chunkEnd;
      }
    } finally {
      if (pos < end) void reader.cancel().catch(() => {});
    }
    if (pos < end) throw new Transient(`the server sent ${pos - span.start} of the ${length} bytes of ${where} and closed the connection`);
  }
}

/** Parses `bytes a-b/total` (total may be `*`). Returns an exclusive end. */
export function parseContentRange(h: string | null): { start: number; end: number; total?: number } | undefined {
  const m = h ? /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(h) : null;
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]) + 1, total: m[3] === "*" ? undefined : Number(m[3]) };
}

function validatorOf(h: Headers): string | undefined {
  const etag = h.get("etag");
  if (etag) return etag;
  const lm = h.get("last-modified");
  return lm ? `last-modified:${lm}` : undefined;
}
