import type { FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import type { FlmSink } from "@flashllm/sdk";

/**
 * A positional {@link FlmSink} over a file, written to a temporary `<path>.<pid>-<random>.partial` and
 * renamed into place by {@link commit}, so an interrupted conversion never leaves a file that looks
 * complete, and two processes writing the same file at once never share (and delete) a temp file: each
 * rename is atomic, the last one wins, and both wrote the same bytes.
 */
export class NodeFileSink implements FlmSink {
  private constructor(private readonly handle: FileHandle, readonly path: string, private readonly tempPath: string) {}

  static async create(path: string): Promise<NodeFileSink> {
    const tempPath = `${path}.${process.pid}-${randomBytes(4).toString("hex")}.partial`;
    return new NodeFileSink(await open(tempPath, "wx"), path, tempPath);
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
    try {
      await this.handle.sync();
      await this.handle.close();
      await rename(this.tempPath, this.path);
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  /** Closes and deletes the partial file. */
  async abort(): Promise<void> {
    await this.handle.close().catch(() => {});
    await rm(this.tempPath, { force: true });
  }
}
