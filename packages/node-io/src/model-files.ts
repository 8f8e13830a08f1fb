import { existsSync, statSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import { convertLlama2c, type ConvertOptions } from "@flashllm/sdk";
import { NodeFileSink } from "./file-sink.js";

/** Where converted models are kept: `$FLASHLLM_CACHE`, else `~/.cache/flashllm`. */
export function cacheDir(): string {
  return process.env.FLASHLLM_CACHE ?? join(homedir(), ".cache", "flashllm");
}

/** Converts a llama2.c checkpoint + tokenizer into a `.flm` file (atomically). */
export async function convertFile(checkpoint: string, tokenizer: string, out: string, opts: ConvertOptions = {}): Promise<void> {
  const sink = await NodeFileSink.create(out);
  try {
    await convertLlama2c(await readFile(checkpoint), await readFile(tokenizer), sink, {
      ...opts,
      provenance: { source: basename(checkpoint), tokenizer: basename(tokenizer), convertedAt: new Date().toISOString(), ...opts.provenance },
    });
    await sink.commit();
  } catch (e) {
    await sink.abort();
    throw e;
  }
}

/**
 * The `.flm` for a llama2.c checkpoint, converted on first use and kept in {@link cacheDir}. The
 * name carries the source's size and mtime, so a changed checkpoint is converted again.
 */
export async function flmFor(checkpoint: string, tokenizer: string, opts: ConvertOptions & { dtype?: "f32" | "q8" } = {}, log?: (msg: string) => void): Promise<string> {
  const st = statSync(checkpoint);
  const dtype = opts.dtype ?? "f32";
  const name = `${basename(checkpoint).replace(/\.bin$/, "")}-${st.size}-${Math.floor(st.mtimeMs)}-${dtype}-${opts.activation ?? "silu"}.flm`;
  const dir = cacheDir();
  const out = join(dir, name);
  if (!existsSync(out)) {
    await mkdir(dir, { recursive: true });
    log?.(`converting ${checkpoint} to ${out} (first use)`);
    await convertFile(checkpoint, tokenizer, out, { ...opts, dtype });
  }
  return out;
}
