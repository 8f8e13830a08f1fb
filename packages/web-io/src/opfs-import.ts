import { FlashError, SourceError, throwIfAborted } from "@flashllm/sdk";
import { QuotaError } from "./errors.js";
import type { SyncAccessHandle } from "./opfs-source.js";
import type { ImportResult, Progress, StorageInfo } from "./protocol.js";
import { describeNetworkFailure, diagnoseNetworkFailure } from "./network-error.js";
import { abortedFrom, formatBytes } from "./util.js";

/** Options of {@link importToOpfs}. */
export interface ImportOptions {
  /**
   * Called with the bytes copied so far: at the start, then at least every 1% of the file or every
   * 256 KiB, whichever is less (see {@link progressStep}), and once at the end.
   */
  onProgress?: (progress: Progress) => void;
  /** Stops the copy; what was written stays, and the next import of the same source resumes from it. */
  signal?: AbortSignal;
  /** Bytes between resumption checkpoints (flush + record; default 8 MiB). */
  chunkBytes?: number;
  /** Request headers for a URL import. */
  headers?: Record<string, string>;
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Directory to import into (default: the OPFS root). */
  directory?: FileSystemDirectoryHandle;
}

/**
 * What `<name>.import.json` beside the file records: where the bytes come from and how many are safely
 * on disk, so that an interrupted import resumes instead of starting over, and a finished one is not
 * copied again.
 */
interface ImportRecord {
  version: 1;
  /** Identity of the source: URL + ETag/Last-Modified, or file name + size + lastModified. */
  identity: string;
  size: number;
  /** Bytes written and flushed. */
  written: number;
  complete: boolean;
}

const RECORD_SUFFIX = ".import.json";

/** Largest step between two progress reports of an import (also capped at 1% of the file). */
export const MAX_PROGRESS_STEP = 256 * 1024;

/** Bytes between two progress reports of an import of `size` bytes: 1% of it, at most 256 KiB. */
export function progressStep(size: number): number {
  return Math.max(1, Math.min(MAX_PROGRESS_STEP, Math.ceil(size / 100)));
}

/** Largest slice of a `File` read at once (smaller than a checkpoint, so progress moves steadily). */
const BLOB_SLICE = 1024 * 1024;

/**
 * Copies a `File`/`Blob` or the file at a URL into OPFS as `name`, so later visits stream the model
 * from local storage ({@link OpfsSource}). Resumes an interrupted import of the same source (same URL
 * and ETag, or same file name, size and date); skips the copy when the file is already complete.
 * Checks the origin's quota first and fails with {@link QuotaError} when the model does not fit.
 *
 * Writes through a `FileSystemSyncAccessHandle`, so it must run in a dedicated worker (the
 * {@link FlashWorkerClient} does that for you).
 */
export async function importToOpfs(from: Blob | string | URL, name: string, options: ImportOptions = {}): Promise<ImportResult> {
  const chunk = options.chunkBytes ?? 8 * 1024 * 1024;
  if (!(chunk >= 1)) throw new FlashError("BAD_ARGUMENT", `chunkBytes must be ≥ 1, got ${options.chunkBytes}`);
  throwIfAborted(options.signal);
  const opened = typeof from === "string" || from instanceof URL ? await openUrl(String(from), options) : openBlob(from);
  try {
    return await copy(opened, name, chunk, options);
  } finally {
    opened.cancel();
  }
}

/** Reports the origin's quota and the files in the OPFS root. */
export async function storageInfo(directory?: FileSystemDirectoryHandle): Promise<StorageInfo> {
  const est = await navigator.storage.estimate();
  const quota = est.quota ?? 0;
  const usage = est.usage ?? 0;
  const persisted = (await navigator.storage.persisted?.()) ?? false;
  const dir = directory ?? (await navigator.storage.getDirectory());
  const files: StorageInfo["files"] = [];
  const entries = (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries();
  for await (const [n, h] of entries) {
    if (h.kind !== "file" || n.endsWith(RECORD_SUFFIX)) continue;
    const bytes = (await (h as FileSystemFileHandle).getFile()).size;
    const rec = await readRecord(dir, n);
    files.push({ name: n, bytes, complete: rec ? rec.complete : true });
  }
  return { quota, usage, available: Math.max(0, quota - usage), persisted, files };
}

/** Deletes `name` and its import record from OPFS (no error if absent). */
export async function removeFromOpfs(name: string, directory?: FileSystemDirectoryHandle): Promise<void> {
  const { dir, base } = await parentOf(name, directory, false).catch(() => ({ dir: undefined, base: "" }));
  if (!dir) return;
  for (const n of [base, base + RECORD_SUFFIX]) await dir.removeEntry(n).catch(() => {});
}

/** A source being imported: its size, identity and a way to read from `offset` on. */
interface Opened {
  size: number;
  identity: string;
  /** Streams bytes from `offset` to the end. */
  stream(offset: number, chunk: number, signal?: AbortSignal): AsyncIterable<Uint8Array>;
  cancel(): void;
}

function openBlob(blob: Blob): Opened {
  const f = blob as Partial<File>;
  return {
    size: blob.size,
    identity: `file:${f.name ?? "blob"}:${blob.size}:${f.lastModified ?? 0}`,
    async *stream(offset, chunk, signal) {
      const slice = Math.min(chunk, BLOB_SLICE);
      for (let o = offset; o < blob.size; o += slice) {
        if (signal?.aborted) throw abortedFrom(signal);
        let buf: ArrayBuffer;
        try {
          buf = await blob.slice(o, Math.min(o + slice, blob.size)).arrayBuffer();
        } catch (e) {
          throw new SourceError(`cannot read ${f.name ?? "the file"} at offset ${o}: it was changed or moved after it was picked? (${(e as Error)?.message ?? e})`, o, chunk, { cause: e });
        }
        yield new Uint8Array(buf);
      }
    },
    cancel() {},
  };
}

// One GET (no Range) tells size and identity; a resumed import then asks for the rest with a Range.
async function openUrl(url: string, options: ImportOptions): Promise<Opened> {
  const abs = new URL(url, globalThis.location?.href).href;
  const fetchFn = options.fetch ?? globalThis.fetch.bind(globalThis);
  const controllers = new Set<AbortController>();
  const get = async (range: string | undefined, signal?: AbortSignal): Promise<Response> => {
    const c = new AbortController();
    controllers.add(c);
    signal?.addEventListener("abort", () => c.abort(signal.reason), { once: true });
    let res: Response;
    try {
      res = await fetchFn(abs, { headers: { ...options.headers, ...(range ? { Range: range } : {}) }, signal: c.signal, cache: "no-store" });
    } catch (e) {
      if (signal?.aborted) throw abortedFrom(signal);
      const kind = await diagnoseNetworkFailure(abs, fetchFn, signal);
      throw new SourceError(`cannot download ${abs}: ${describeNetworkFailure(kind, abs, (e as Error)?.message ?? String(e))}`, 0, 0, { cause: e });
    }
    if (!res.ok) throw new SourceError(`cannot download ${abs}: HTTP ${res.status} ${res.statusText}`, 0, 0);
    return res;
  };
  // Learn size and validator with a 1-byte range (a HEAD may be refused where GET is not).
  const probe = await get("bytes=0-0", options.signal);
  void probe.body?.cancel().catch(() => {});
  const total = probe.status === 206 ? Number(/\/(\d+)\s*$/.exec(probe.headers.get("content-range") ?? "")?.[1]) : Number(probe.headers.get("content-length"));
  if (!Number.isSafeInteger(total)) throw new SourceError(`cannot import ${abs}: the server does not tell its size`, 0, 0);
  const validator = probe.headers.get("etag") ?? probe.headers.get("last-modified") ?? "";
  const rangeOk = probe.status === 206;
  return {
    size: total,
    identity: `url:${abs}:${total}:${validator}`,
    async *stream(offset, _chunk, signal) {
      if (offset >= total) return; // everything arrived before the interruption; `bytes=N-` would be a 416
      // Resume only from a server that honours Range and still has the same file.
      const res = await get(offset > 0 && rangeOk ? `bytes=${offset}-` : undefined, signal);
      const now = res.headers.get("etag") ?? res.headers.get("last-modified") ?? "";
      if (now !== validator) throw new SourceError(`${abs} changed on the server during the import (${validator} → ${now}): start it again`, offset, 0);
      let skip = res.status === 206 ? 0 : offset; // a 200 restarts at 0: drop what we already have
      if (!res.body) throw new SourceError(`the server sent no body for ${abs}`, offset, 0);
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read().catch((e) => {
            if (signal?.aborted) throw abortedFrom(signal);
            throw new SourceError(`the download of ${abs} broke: ${(e as Error)?.message ?? e}`, offset, 0, { cause: e });
          });
          if (done) return;
          if (skip >= value.byteLength) {
            skip -= value.byteLength;
            continue;
          }
          yield skip > 0 ? value.subarray(skip) : value;
          skip = 0;
        }
      } finally {
        void reader.cancel().catch(() => {});
      }
    },
    cancel() {
      for (const c of controllers) c.abort();
    },
  };
}

async function copy(src: Opened, name: string, chunk: number, options: ImportOptions): Promise<ImportResult> {
  const { dir, base } = await parentOf(name, options.directory, true);
  let record = await readRecord(dir, base);
  type Writable = FileSystemFileHandle & { createSyncAccessHandle?(): Promise<SyncAccessHandle> };
  const found = (await dir.getFileHandle(base).catch(() => undefined)) as Writable | undefined;
  const existing = found ? (await found.getFile()).size : 0;
  if (found && record?.identity === src.identity && record.complete && existing === src.size) {
    options.onProgress?.({ phase: "import", loaded: src.size, total: src.size, resumedFrom: src.size });
    return { name, bytes: src.size, resumedFrom: src.size, alreadyComplete: true };
  }
  const resumedFrom = record?.identity === src.identity && !record.complete ? Math.min(record.written, existing) : 0;
  // Before creating anything: even an empty file fails once the origin is over its quota.
  await checkQuota(src.size - resumedFrom, Math.max(0, existing - resumedFrom), name);
  let file: Writable;
  try {
    file = found ?? ((await dir.getFileHandle(base, { create: true })) as Writable);
  } catch (e) {
    if ((e as DOMException)?.name === "QuotaExceededError") throw quotaError(src.size, 0, name, e);
    throw new SourceError(`cannot create ${name} in OPFS: ${(e as Error)?.message ?? e}`, 0, 0, { cause: e });
  }

  if (typeof file.createSyncAccessHandle !== "function") {
    throw new FlashError("UNSUPPORTED", "importing into OPFS needs synchronous file access, which exists only in dedicated workers: import through FlashWorkerClient.importToOpfs");
  }
  let handle: SyncAccessHandle;
  try {
    handle = await file.createSyncAccessHandle();
  } catch (e) {
    throw new SourceError(`cannot write ${name} in OPFS: it is open elsewhere (a model loaded from it, or another import)`, 0, 0, { cause: e });
  }
  let written = resumedFrom;
  record = { version: 1, identity: src.identity, size: src.size, written, complete: false };
  try {
    // Bytes past the last checkpoint may be half-written: cut them off and rewrite them.
    handle.truncate(written);
    await writeRecord(dir, base, record);
    options.onProgress?.({ phase: "import", loaded: written, total: src.size, resumedFrom });
    let sinceCheckpoint = 0;
    const step = progressStep(src.size);
    let reported = written;
    for await (const bytes of src.stream(written, chunk, options.signal)) {
      if (options.signal?.aborted) throw abortedFrom(options.signal);
      // Written in pieces that end on progress steps, so a network chunk of 64 KiB still reports each 1%.
      for (let o = 0; o < bytes.byteLength; ) {
        const n = Math.min(bytes.byteLength - o, Math.max(1, reported + step - written));
        writeAll(handle, bytes.subarray(o, o + n), written, name, src.size);
        written += n;
        sinceCheckpoint += n;
        o += n;
        if (sinceCheckpoint >= chunk) {
          sinceCheckpoint = 0;
          handle.flush();
          record.written = written;
          await writeRecord(dir, base, record);
        }
        if (written - reported >= step && written < src.size) {
          reported = written;
          options.onProgress?.({ phase: "import", loaded: written, total: src.size, resumedFrom });
        }
      }
    }
    if (written !== src.size) {
      throw new SourceError(`the source of ${name} ended after ${written} of ${src.size} bytes: import it again`, written, src.size - written);
    }
    handle.flush();
    record.written = written;
    record.complete = true;
    await writeRecord(dir, base, record);
    options.onProgress?.({ phase: "import", loaded: written, total: src.size, resumedFrom });
    return { name, bytes: written, resumedFrom, alreadyComplete: false };
  } catch (e) {
    // Keep what is on disk for the next attempt.
    try {
      handle.flush();
      record.written = Math.min(written, handle.getSize());
      await writeRecord(dir, base, record);
    } catch {
      /* the original error matters more */
    }
    if ((e as DOMException)?.name === "QuotaExceededError") throw quotaError(src.size - written, 0, name, e);
    throw e;
  } finally {
    handle.close();
  }
}

function writeAll(handle: SyncAccessHandle, bytes: Uint8Array, at: number, name: string, total: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    let n: number;
    try {
      n = handle.write(bytes.subarray(done), { at: at + done });
    } catch (e) {
      if ((e as DOMException)?.name === "QuotaExceededError") throw quotaError(total - at - done, 0, name, e);
      throw new SourceError(`cannot write ${name} in OPFS at offset ${at + done}: ${(e as Error)?.message ?? e}`, at + done, bytes.byteLength - done, { cause: e });
    }
    if (n <= 0) throw quotaError(total - at - done, 0, name);
    done += n;
  }
}

// `reclaimed`: bytes of an older file that the import truncates away before writing.
async function checkQuota(needed: number, reclaimed: number, name: string): Promise<void> {
  const est = await navigator.storage.estimate?.();
  if (!est || est.quota === undefined || est.usage === undefined) return;
  const available = est.quota - est.usage + reclaimed;
  if (needed > available) throw quotaError(needed, available, name);
}

function quotaError(needed: number, available: number, name: string, cause?: unknown): QuotaError {
  return new QuotaError(
    `not enough browser storage for ${name}: it needs ${formatBytes(needed)} more, this site may use only ` +
      `${formatBytes(available)} more. Free space on the disk or delete other models from this site, or read the model from its file or URL instead.`,
    { needed, available },
    { cause },
  );
}

async function parentOf(path: string, root: FileSystemDirectoryHandle | undefined, create: boolean): Promise<{ dir: FileSystemDirectoryHandle; base: string }> {
  const parts = path.split("/").filter((p) => p !== "");
  if (parts.length === 0) throw new FlashError("BAD_ARGUMENT", `"${path}" is not a file name`);
  let dir = root ?? (await navigator.storage.getDirectory());
  for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p, { create });
  return { dir, base: parts[parts.length - 1] };
}

async function readRecord(dir: FileSystemDirectoryHandle, base: string): Promise<ImportRecord | undefined> {
  try {
    const f = await (await dir.getFileHandle(base + RECORD_SUFFIX)).getFile();
    const r = JSON.parse(await f.text()) as ImportRecord;
    return r.version === 1 ? r : undefined;
  } catch {
    return undefined;
  }
}

// Through a sync handle too: `createWritable` would stage a copy and commit it only on close.
async function writeRecord(dir: FileSystemDirectoryHandle, base: string, record: ImportRecord): Promise<void> {
  const h = (await dir.getFileHandle(base + RECORD_SUFFIX, { create: true })) as FileSystemFileHandle & {
    createSyncAccessHandle(): Promise<SyncAccessHandle>;
  };
  const handle = await h.createSyncAccessHandle();
  try {
    const bytes = new TextEncoder().encode(JSON.stringify(record));
    handle.truncate(0);
    handle.write(bytes, { at: 0 });
    handle.flush();
  } finally {
    handle.close();
  }
}
