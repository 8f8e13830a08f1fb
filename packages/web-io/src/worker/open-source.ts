import { FlashError, SourceError } from "@flashllm/sdk";
import type { FlashSource } from "@flashllm/sdk";
import { BlobSource } from "../blob-source.js";
import { HttpRangeSource } from "../http-range-source.js";
import { OpfsSource, opfsFileHandle } from "../opfs-source.js";
import type { OpfsSourceOptions } from "../opfs-source.js";
import type { ModelSourceSpec } from "../protocol.js";

/** Opens the source a {@link ModelSourceSpec} names: the engine worker's handle, or one shard's own. */
export async function openSource(spec: ModelSourceSpec, signal?: AbortSignal): Promise<FlashSource> {
  switch (spec.kind) {
    case "opfs":
      return openOpfs(spec.name, spec.opfs);
    case "file":
      return new BlobSource(spec.file);
    case "url":
      return HttpRangeSource.open(spec.url, { ...spec.http, signal });
    default:
      throw new FlashError("BAD_ARGUMENT", `unknown model source ${JSON.stringify(spec)}`);
  }
}

/**
 * An OPFS file through a read-only sync access handle, which several workers may hold at once
 * (Chromium 121+: the coordinator and every shard each open one; measured in Debian's Chromium 150 by
 * test/browser/shards.browser.test.ts). Where the browser gives only exclusive handles (older engines)
 * and another worker holds the file, the same bytes are read through the async File API instead
 * (`getFile()`, a Blob: one copy per read, never a lock).
 */
async function openOpfs(name: string, options?: OpfsSourceOptions): Promise<FlashSource> {
  try {
    return await OpfsSource.open(name, options);
  } catch (e) {
    const locked = e instanceof SourceError && (e.cause as DOMException | undefined)?.name === "NoModificationAllowedError";
    if (!locked) throw e;
    const file = await (await opfsFileHandle(name)).getFile();
    return new BlobSource(file);
  }
}
