import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { access, constants, mkdir, readFile, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { FlashError, chatTemplateFromTokenizerConfig, convertGguf, convertTensors, hfTensors, isGguf, llama2cTensorSource, mapHfConfig, openShardedSafetensors, openSafetensors, type ConvertOptions, type Dtype, type TensorReader, type TokenizerFile } from "@flashllm/sdk/internal";
import { NodeFileSource } from "./source/index.js";
import { NodeFileSink } from "./file-sink.js";
import { readInputFile, requireFile } from "./input-files.js";

/** Where converted models are kept: `$FLASHLLM_CACHE`, else `~/.cache/flashllm`. */
export function cacheDir(): string {
  return process.env.FLASHLLM_CACHE || join(homedir(), ".cache", "flashllm");
}

/**
 * Converts a model into a `.flm` file (atomically): a GGUF file (recognised by its magic, not its
 * name; its tokenizer comes from its metadata), a llama2.c checkpoint, or a Hugging Face folder
 * (`config.json` + `model.safetensors` or a sharded `model.safetensors.index.json`), read tensor by
 * tensor so a large checkpoint never sits in memory whole.
 */
export async function convertFile(checkpoint: string, tokenizer: string | undefined, out: string, opts: ConvertOptions = {}): Promise<void> {
  const input = await stat(checkpoint).catch(() => undefined);
  if (!input?.isDirectory()) await requireFile(checkpoint, "checkpoint");
  if (tokenizer !== undefined) await requireFile(tokenizer, "tokenizer");
  await refuseOverwritingInput(out, tokenizer !== undefined ? [checkpoint, tokenizer] : [checkpoint]);
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
      const chatTemplate = opts.chatTemplate ?? (await folderChatTemplate(checkpoint, needTokenizer()));
      // predictors the checkpoint carries (TurboSparse-Mistral's) are stored as the file's, so it runs sparse without calibration
      await convertTensors({ config: spec.config, has: (n) => tensors.has(n), getTensor: (n) => tensors.getTensor(n), ...(tensors.predictor ? { predictor: tensors.predictor } : {}) }, tok, sink, {
        ...opts,
        chatTemplate,
        provenance: { sourceFormat: `huggingface ${spec.architecture}`, ...provenance },
      });
    } else {
      // Streamed tensor by tensor: a checkpoint of any size converts with memory for one layer.
      const source = await NodeFileSource.open(checkpoint);
      sources.push(source);
      if (await isGguf(source)) {
        await convertGguf(source, sink, { ...opts, activation: opts.activation, provenance });
      } else {
        const tensors = await llama2cTensorSource(source, opts);
        await convertTensors(tensors, { kind: "llama2c", bytes: await readInputFile(needTokenizer(), "tokenizer") }, sink, { ...opts, provenance: { sourceFormat: "llama2.c", ...provenance } });
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

/** Refuses an output path that is one of the inputs (the same file under any name): writing it would destroy the input. */
async function refuseOverwritingInput(out: string, inputs: string[]): Promise<void> {
  const o = await stat(out).catch(() => undefined);
  if (!o) return;
  for (const path of inputs) {
    const i = await stat(path).catch(() => undefined);
    if (i && i.dev === o.dev && i.ino === o.ino) throw new FlashError("BAD_ARGUMENT", `the output ${out} is the input ${path}: converting would overwrite it; choose another output file`, { out, input: path });
  }
}

/**
 * The `.flm` for a llama2.c checkpoint, converted on first use and kept in {@link cacheDir}. The name
 * carries a digest of everything the result depends on (the checkpoint's size and mtime, the tokenizer's
 * bytes, dtype, activation and layout), so a changed checkpoint or another tokenizer is converted again.
 * Safe when several processes start at once: each converts to its own temp file and renames it into
 * place atomically (see {@link NodeFileSink}), so a reader only ever sees a complete file.
 */
export async function flmFor(checkpoint: string, tokenizer: string, opts: ConvertOptions & { dtype?: Dtype } = {}, log?: (msg: string) => void): Promise<string> {
  const st = await requireFile(checkpoint, "checkpoint");
  const dtype = opts.dtype ?? "f32";
  const activation = opts.activation ?? "silu";
  const digest = createHash("sha256")
    .update(JSON.stringify({ size: st.size, mtime: Math.floor(st.mtimeMs), dtype, activation, bundleAlignment: opts.bundleAlignment ?? null, woLayout: opts.woLayout ?? "heads" }))
    .update(await readInputFile(tokenizer, "tokenizer"))
    .digest("hex")
    .slice(0, 16);
  const name = `${basename(checkpoint).replace(/\.bin$/, "")}-${digest}-${dtype}-${activation}.flm`;
  const dir = await usableCacheDir();
  const out = join(dir, name);
  if (!existsSync(out)) {
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

/** {@link cacheDir}, created if needed and checked writable, or a clear error saying what to do. */
async function usableCacheDir(): Promise<string> {
  const dir = cacheDir();
  const fromEnv = Boolean(process.env.FLASHLLM_CACHE);
  try {
    await makeDirs(dir);
    await access(dir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new FlashError(
      "CACHE_UNUSABLE",
      `cannot use ${dir} (${fromEnv ? "from FLASHLLM_CACHE" : "the default cache folder"}) to keep converted models: ${code}. ` +
        `Set FLASHLLM_CACHE to a writable folder, or convert once with \`flashllm convert\` and run the .flm with --model`,
      { dir, errno: code },
    );
  }
  return dir;
}

/**
 * `mkdir -p`, one level at a time. Node's `mkdir(…, { recursive: true })` loops forever when a parent
 * cannot be created but the kernel answers ENOENT (a HOME in /proc, some read-only mounts); this
 * stops at the first level that fails, with that level's errno.
 */
async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  for (const d of missing) {
    await mkdir(d).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== "EEXIST") throw e; // another process made it meanwhile
    });
  }
  if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error(`${dir} is not a folder`), { code: "ENOTDIR" });
}

/** A character vocabulary as the JSON array of pieces the `.flm` stores (from an array or a piece→id map). */
function charVocab(json: string): Uint8Array {
  const parsed = JSON.parse(json) as unknown;
  // Some exports wrap the array: {"vocab": [...]}.
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
