import { open, readFile, stat } from "node:fs/promises";
import type { Stats } from "node:fs";
import { FLM_MAGIC, FlashError } from "@flashllm/sdk/internal";

/**
 * Checks that `path` names a regular file before anything opens it: opening a FIFO for reading blocks
 * until a writer comes (the CLI would hang), and a folder or a missing file deserves its own words.
 * `what` names the file for the message ("model", "tokenizer").
 */
export async function requireFile(path: string, what: string): Promise<Stats> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FlashError("BAD_ARGUMENT", code === "ENOENT" ? `${what} ${path}: no such file` : `${what} ${path}: cannot read it (${code})`, { path });
  }
  if (!st.isFile()) {
    const kind = st.isDirectory() ? "a folder" : st.isFIFO() ? "a FIFO (pipe)" : st.isSocket() ? "a socket" : "not a regular file";
    throw new FlashError("BAD_ARGUMENT", `${what} ${path} is ${kind}: give a regular file`, { path });
  }
  return st;
}

/** Reads a whole input file after {@link requireFile}. */
export async function readInputFile(path: string, what: string): Promise<Buffer> {
  await requireFile(path, what);
  return readFile(path);
}

/** What a model file is, by its first bytes: a `.flm` container starts with its magic; anything else is taken as a llama2.c checkpoint (whose reader validates it). */
export type ModelKind = "flm" | "llama2c";

/** Sniffs a model file's kind from its magic, whatever its name ends with. */
export async function sniffModel(path: string): Promise<ModelKind> {
  await requireFile(path, "model");
  const h = await open(path, "r");
  try {
    const head = Buffer.alloc(FLM_MAGIC.length);
    const { bytesRead } = await h.read(head, 0, head.length, 0);
    return bytesRead === head.length && head.toString("latin1") === FLM_MAGIC ? "flm" : "llama2c";
  } finally {
    await h.close();
  }
}
