import { SourceError, throwIfAborted } from "@flashllm/sdk";
import type { FlashSource, ReadRequest } from "@flashllm/sdk";
import { checkRequest } from "./util.js";

/**
 * The part of `FileSystemSyncAccessHandle` this package uses (TypeScript's DOM library does not
 * declare it: the type exists only in dedicated workers).
 */
export interface SyncAccessHandle {
  read(buffer: ArrayBufferView, options?: { at?: number }): number;
  write(buffer: ArrayBufferView, options?: { at?: number }): number;
  getSize(): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

/** Options of {@link OpfsSource}. */
export interface OpfsSourceOptions {
  /** Largest single read on the handle, bytes (default 64 KiB: larger reads are much slower in Chromium). */
  maxReadBytes?: number;
  /**
   * Requests of one `read` whose gap is at most this many bytes are fetched with one handle read (of at
   * most `maxReadBytes`) into a scratch buffer and copied out (default 64 KiB; 0 = every request on its
   * own, straight into its target). A handle read costs about the same up to 64 KiB, so a few merged
   * reads beat many small ones: the sparse model's scattered neurons take ~14 reads per layer unmerged.
   */
  mergeGapBytes?: number;
}

/** `FileSystemFileHandle` with the worker-only `createSyncAccessHandle`. */
interface SyncCapableFileHandle extends FileSystemFileHandle {
  createSyncAccessHandle?(options?: { mode?: "read-only" | "readwrite" | "readwrite-unsafe" }): Promise<SyncAccessHandle>;
}

/** Zero-byte reads tolerated before a request is reported as cut short. */
const SHORT_READ_RETRIES = 2;

/**
 * Largest single `read()` on the handle. Measured in Chromium 150 (headless, Linux): a read of 64 KiB
 * takes ~0.4 ms, a read of 64 KiB + 1 byte ~6 ms, 256 KiB ~7-18 ms; four 64 KiB reads take ~2 ms.
 * So longer requests are read in 64 KiB steps, straight into consecutive parts of the target.
 */
const DEFAULT_MAX_READ = 64 * 1024;

/**
 * A {@link FlashSource} over a file in the origin private file system, read through a
 * `FileSystemSyncAccessHandle`: `read(view, { at })` fills the target, a view of WASM memory, in place,
 * with no intermediate buffer. The fastest way to stream a model in a browser; only available in
 * dedicated workers (run the engine there: see {@link FlashWorkerClient}).
 *
 * Reads are synchronous: the engine's bundled, coalesced reads keep their number small.
 */
export class OpfsSource implements FlashSource {
  readonly byteLength: number;
  /**
   * True when the handle is read-only, so other workers may hold one on the same file at once
   * (Chromium 121+); false for the exclusive handle of browsers without read-only handles.
   */
  shared = false;
  private closed = false;

  private readonly maxRead: number;
  private readonly mergeGap: number;
  private scratch: Uint8Array | undefined;

  /** Wraps an open handle (the source closes it). Prefer {@link OpfsSource.open}. */
  constructor(
    private readonly handle: SyncAccessHandle,
    /** The file's OPFS path, for messages. */
    readonly name: string,
    options: OpfsSourceOptions = {},
  ) {
    this.byteLength = handle.getSize();
    this.maxRead = options.maxReadBytes ?? DEFAULT_MAX_READ;
    this.mergeGap = options.mergeGapBytes ?? 64 * 1024;
    if (!(this.maxRead >= 1)) throw new RangeError(`maxReadBytes must be ≥ 1, got ${options.maxReadBytes}`);
    if (!(this.mergeGap >= 0)) throw new RangeError(`mergeGapBytes must be ≥ 0, got ${options.mergeGapBytes}`);
  }

  /**
   * Opens `path` (`"dir/file.flm"`, relative to the OPFS root or to `directory`) read-only. Rejects with
   * SourceError when the file is missing, when not in a dedicated worker, or when the file is open for
   * writing elsewhere (an import in progress).
   */
  static async open(path: string, options: OpfsSourceOptions & { directory?: FileSystemDirectoryHandle } = {}): Promise<OpfsSource> {
    const file = (await opfsFileHandle(path, { directory: options.directory })) as SyncCapableFileHandle;
    if (typeof file.createSyncAccessHandle !== "function") {
      throw new SourceError(`cannot read ${path} from OPFS here: synchronous file access exists only in dedicated workers (run the engine in a worker)`, 0, 0);
    }
    let handle: SyncAccessHandle;
    let shared = true;
    try {
      // Read-only handles (Chromium 121+) may be shared by several workers and tabs; older browsers
      // reject the option, and then an exclusive handle is the only kind there is.
      handle = await file.createSyncAccessHandle({ mode: "read-only" }).catch((e: unknown) => {
        if ((e as Error)?.name !== "TypeError") throw e;
        shared = false;
        return file.createSyncAccessHandle!();
      });
    } catch (e) {
      const busy = (e as DOMException)?.name === "NoModificationAllowedError";
      throw new SourceError(
        busy
          ? `${path} in OPFS is open for writing elsewhere (an import still running, in this or another tab): wait for it to finish`
          : `cannot open ${path} in OPFS: ${(e as Error)?.message ?? e}`,
        0,
        0,
        { cause: e },
      );
    }
    try {
      const source = new OpfsSource(handle, path, options);
      source.shared = shared;
      return source;
    } catch (e) {
      handle.close(); // bad options: the handle must not stay open, it would lock the file against imports
      throw e;
    }
  }

  async read(requests: readonly ReadRequest[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    for (const r of requests) {
      if (this.closed) throw new SourceError(`${this.name} is closed: read of ${r.length} bytes at offset ${r.offset}`, r.offset, r.length);
      checkRequest(r, this.byteLength, this.name);
    }
    for (const group of this.groups(requests)) {
      if (group.length === 1) {
        const r = group[0];
        this.readInto(r.target.subarray(0, r.length), r.offset, r);
        continue;
      }
      // Several requests within one handle read: into the scratch buffer, then each to its target.
      const start = group[0].offset;
      const end = Math.max(...group.map((r) => r.offset + r.length));
      this.scratch ??= new Uint8Array(this.maxRead);
      const buf = this.scratch.subarray(0, end - start);
      this.readInto(buf, start, { offset: start, length: end - start });
      for (const r of group) r.target.set(buf.subarray(r.offset - start, r.offset - start + r.length));
    }
  }

  // Sorted by offset, neighbours within mergeGap whose span fits one handle read share a group.
  private groups(requests: readonly ReadRequest[]): ReadRequest[][] {
    const sorted = requests.filter((r) => r.length > 0).sort((a, b) => a.offset - b.offset);
    const groups: ReadRequest[][] = [];
    let cur: ReadRequest[] | undefined;
    let curStart = 0;
    let curEnd = 0;
    for (const r of sorted) {
      const end = r.offset + r.length;
      if (cur && this.mergeGap > 0 && r.offset - curEnd <= this.mergeGap && Math.max(curEnd, end) - curStart <= this.maxRead) {
        cur.push(r);
        curEnd = Math.max(curEnd, end);
      } else {
        cur = [r];
        groups.push(cur);
        curStart = r.offset;
        curEnd = end;
      }
    }
    return groups;
  }

  // Fills `view` from file offset `at`, in steps of at most maxRead; `what` names the request in errors.
  private readInto(view: Uint8Array, at: number, what: { offset: number; length: number }): void {
    let done = 0;
    let zeros = 0;
    while (done < view.byteLength) {
      let n: number;
      try {
        n = this.handle.read(view.subarray(done, Math.min(view.byteLength, done + this.maxRead)), { at: at + done });
      } catch (e) {
        throw new SourceError(`cannot read ${what.length} bytes at offset ${what.offset} of ${this.name} in OPFS: ${(e as Error)?.message ?? e}`, what.offset, what.length, { cause: e });
      }
      if (n > 0) done += n;
      else if (++zeros > SHORT_READ_RETRIES) {
        throw new SourceError(
          `${this.name} in OPFS ended after ${at + done} bytes, inside a read of ${what.length} bytes at offset ${what.offset} (the file shrank?)`,
          what.offset,
          what.length,
        );
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }
}

/**
 * Resolves a `/`-separated path in OPFS to a file handle; with `create`, makes missing directories and
 * the file. Rejects with SourceError naming the path when it does not exist.
 */
export async function opfsFileHandle(path: string, opts: { create?: boolean; directory?: FileSystemDirectoryHandle } = {}): Promise<FileSystemFileHandle> {
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.length === 0) throw new SourceError(`"${path}" is not a file name`, 0, 0);
  let dir = opts.directory;
  if (!dir) {
    if (!globalThis.navigator?.storage?.getDirectory) throw new SourceError("this browser has no origin private file system (OPFS)", 0, 0);
    dir = await navigator.storage.getDirectory();
  }
  try {
    for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p, { create: opts.create });
    return await dir.getFileHandle(parts[parts.length - 1], { create: opts.create });
  } catch (e) {
    if ((e as DOMException)?.name === "NotFoundError") {
      throw new SourceError(`${path} is not in this site's storage (OPFS): import it first`, 0, 0, { cause: e });
    }
    throw new SourceError(`cannot open ${path} in OPFS: ${(e as Error)?.message ?? e}`, 0, 0, { cause: e });
  }
}
