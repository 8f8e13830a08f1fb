import { existsSync, statSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { chatTemplateFromTokenizerConfig, convertLlama2c, convertTensors, hfTensors, mapHfConfig, openShardedSafetensors, openSafetensors, type ConvertOptions, type TensorReader, type TokenizerFile } from "@flashllm/sdk";
import { NodeFileSource } from "./source/index.js";
import { NodeFileSink } from "./file-sink.js";

/** Where converted models are kept: `$FLASHLLM_CACHE`, else `~/.cache/flashllm`. */
export function cacheDir(): string {
  return process.env.FLASHLLM_CACHE ?? join(homedir(), ".cache", "flashllm");
}

/**
 * Converts a model into a `.flm` file (atomically): a llama2.c checkpoint, or a Hugging Face folder
 * (`config.json` + `model.safetensors` or a sharded `model.safetensors.index.json`), read tensor by
 * tensor so a large checkpoint never sits in memory whole.
 */
export async function convertFile(checkpoint: string, tokenizer: string, out: string, opts: ConvertOptions = {}): Promise<void> {
  const sink = await NodeFileSink.create(out);
  const provenance = { source: basename(checkpoint), tokenizer: basename(tokenizer), convertedAt: new Date().toISOString(), ...opts.provenance };
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
      const tok = await tokenizerFile(tokenizer);
      const chatTemplate = opts.chatTemplate ?? (await folderChatTemplate(checkpoint, tokenizer));
      await convertTensors({ config: spec.config, has: (n) => tensors.has(n), getTensor: (n) => tensors.getTensor(n) }, tok, sink, {
        ...opts,
        chatTemplate,
        provenance: { sourceFormat: `huggingface ${spec.architecture}`, ...provenance },
      });
    } else {
      await convertLlama2c(await readFile(checkpoint), await readFile(tokenizer), sink, { ...opts, provenance });
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

/**
 * The chat template of a Hugging Face model: `chat_template` of the `tokenizer_config.json` in the
 * model's folder or beside its tokenizer, or the `chat_template.jinja` file newer exports keep apart.
 */
async function folderChatTemplate(folder: string, tokenizer: string): Promise<string | undefined> {
  for (const dir of new Set([folder, dirname(tokenizer)])) {
    const jinja = join(dir, "chat_template.jinja");
    if (existsSync(jinja)) return readFile(jinja, "utf8");
    const cfg = join(dir, "tokenizer_config.json");
    if (existsSync(cfg)) {
      const t = chatTemplateFromTokenizerConfig(JSON.parse(await readFile(cfg, "utf8")));
      if (t !== undefined) return t;
    }
  }
  return undefined;
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
