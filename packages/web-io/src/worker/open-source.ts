import { FlashError } from "@flashllm/sdk";
import type { FlashSource } from "@flashllm/sdk";
import { BlobSource } from "../blob-source.js";
import { HttpRangeSource } from "../http-range-source.js";
import { OpfsSource, opfsFileHandle } from "../opfs-source.js";
import type { ModelSourceSpec } from "../protocol.js";

/** Opens the source a {@link ModelSourceSpec} names: the engine worker's handle, or one shard's own. */
export async function openSource(spec: ModelSourceSpec, signal?: AbortSignal): Promise<FlashSource> {
  switch (spec.kind) {
    case "opfs":
      return OpfsSource.open(spec.name, spec.opfs);
    case "file":
      return new BlobSource(spec.file);
    case "url":
      return HttpRangeSource.open(spec.url, { ...spec.http, signal });
    default:
      throw new FlashError("BAD_ARGUMENT", `unknown model source ${JSON.stringify(spec)}`);
  }
}

/**
 * A shard's own handle on the model: as {@link openSource}, except that an OPFS file the engine's
 * worker holds through an exclusive handle (`exclusive`: browsers without read-only sync handles)
 * is read through the async File API (`getFile()`, a Blob: one copy per read, no lock). With
 * read-only handles (Chromium 121+) the engine's worker and every shard each hold one on the same
 * file at once (checked in Debian's Chromium 150 by test/browser/shards.browser.test.ts).
 */
export async function openShardSource(spec: ModelSourceSpec, exclusive: boolean): Promise<FlashSource> {
  if (spec.kind === "opfs" && exclusive) return new BlobSource(await (await opfsFileHandle(spec.name)).getFile());
  return openSource(spec);
}
