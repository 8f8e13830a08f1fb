import type { FileHandle } from "node:fs/promises";
import { open, rename, rm } from "node:fs/promises";
import type { FlmSink } from "@flashllm/sdk";

/**
 * A positional {@link FlmSink} over a file, written to `<path>.partial` and renamed into place by
 * {@link commit}, so an interrupted conversion never leaves a file that looks complete.
 */
export class NodeFileSink implements FlmSink {
  private constructor(private readonly handle: FileHandle, readonly path: string) {}

  static async create(path: string): Promise<NodeFileSink> {
    return new NodeFileSink(await open(`${path}.partial`, "w"), path);
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.byteLength - done, offset + done);
      done += bytesWritten;
    }
  }

  /** Flushes, closes and moves the file into place. */
  async commit(): Promise<void> {
    await this.handle.sync();
    await this.handle.close();
    await rename(`${this.path}.partial`, this.path);
  }

  /** Closes and deletes the partial file. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => {});
    await rm(`${this.path}.partial`, { force: true });
  }
}
