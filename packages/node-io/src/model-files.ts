import { existsSync, statSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { convertGguf, convertTensors, hfTensors, isGguf, llama2cTensorSource, mapHfConfig, openShardedSafetensors, openSafetensors, type ConvertOptions, type TensorReader, type TokenizerFile } from "@flashllm/sdk";
import { FlashError } from "@flashllm/sdk";
import { NodeFileSource } from "./source/index.js";
import { NodeFileSink } from "./file-sink.js";

/** Where converted models are kept: `$FLASHLLM_CACHE`, else `~/.cache/flashllm`. */
export function cacheDir(): string {
  return process.env.FLASHLLM_CACHE ?? join(homedir(), ".cache", "flashllm");
}

/**
 * Converts a model into a `.flm` file (atomically): a GGUF file (recognised by its magic, not its
 * name; its tokenizer comes from its metadata), a llama2.c checkpoint, or a Hugging Face folder
 * (`config.json` + `model.safetensors` or a sharded `model.safetensors.index.json`), read tensor by
 * tensor so a large checkpoint never sits in memory whole.
 */
export async function convertFile(checkpoint: string, tokenizer: string | undefined, out: string, opts: ConvertOptions = {}): Promise<void> {
  const sink = await NodeFileSink.create(out);
  const provenance = { source: basename(checkpoint), ...(tokenizer ? { tokenizer: basename(tokenizer) } : {}), convertedAt: new Date().toISOString(), ...opts.provenance };
  const needTokenizer = (): string => {
    if (!tokenizer) throw new FlashError("BAD_ARGUMENT", `${basename(checkpoint)} is not a GGUF file, so it needs a tokenizer (-z/--tokenizer)`);
    return tokenizer;
  };
  const sources: NodeFileSource[] = [];
  try {
    if (statSync(checkpoint).isDirectory()) {
      const spec = mapHfConfig(JSON.parse(await readFile(join(checkpoint, "config.json"), "utf8")));
      const openShard = async (name: string) => {
        const s = await NodeFileSource.open(join(checkpoint, name));
        sources.push(s);
        return s;
      };
      const index = join(checkpoint, "model.safetensors.index.json");
      const reader: TensorReader = existsSync(index)
        ? await openShardedSafetensors(await readFile(index, "utf8"), openShard)
        : await openSafetensors(await openShard("model.safetensors"), { name: "model.safetensors" });
      const tensors = hfTensors(reader, spec);
      const tok = await tokenizerFile(needTokenizer());
      await convertTensors({ config: spec.config, has: (n) => tensors.has(n), getTensor: (n) => tensors.getTensor(n) }, tok, sink, { ...opts, provenance: { sourceFormat: `huggingface ${spec.architecture}`, ...provenance } });
    } else {
      const source = await NodeFileSource.open(checkpoint);
      sources.push(source);
      if (await isGguf(source)) {
        await convertGguf(source, sink, { ...opts, activation: opts.activation, provenance });
      } else {
        const tensors = await llama2cTensorSource(source, opts);
        await convertTensors(tensors, { kind: "llama2c", bytes: await readFile(needTokenizer()) }, sink, { ...opts, provenance: { sourceFormat: "llama2.c", ...provenance } });
      }
    }
    await sink.commit();
  } catch (e) {
    await sink.abort();
    throw e;
  } finally {
    for (const s of sources) await s.close();
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

/** A character vocabulary as the JSON array of pieces the `.flm` stores (from an array or a piece→id map). */
function charVocab(json: string): Uint8Array {
  const parsed = JSON.parse(json) as unknown;
  // shared/models' exports wrap the array: {"vocab": [...]}.
  const v = (parsed as { vocab?: unknown }).vocab ?? parsed;
  const pieces = Array.isArray(v) ? v : Object.entries(v as Record<string, number>).sort((a, b) => a[1] - b[1]).map(([p]) => p);
  return new TextEncoder().encode(JSON.stringify(pieces));
}

/**
 * The tokenizer to store, by what the file is: a Hugging Face `tokenizer.json` (an object with a
 * `model`; `tokenizer_config.json` beside it is kept too), a character vocabulary (a JSON array,
 * `{vocab: array}` or a piece→id map), or llama2.c's `tokenizer.bin`.
 */
async function tokenizerFile(path: string): Promise<TokenizerFile> {
  if (!path.endsWith(".json")) return { kind: "llama2c", bytes: await readFile(path) };
  const text = await readFile(path, "utf8");
  const parsed = JSON.parse(text) as { model?: unknown };
  if (parsed && typeof parsed === "object" && parsed.model) {
    const cfgPath = join(dirname(path), "tokenizer_config.json");
    const config = existsSync(cfgPath) ? JSON.parse(await readFile(cfgPath, "utf8")) : {};
    return { kind: "hf", bytes: new TextEncoder().encode(JSON.stringify({ tokenizer: parsed, config })) };
  }
  return { kind: "chars", bytes: charVocab(text) };
}
