// The models the demo server ships, made from the llama2.c checkpoints in packages/node-io/models on first
// use and cached (in .cache/web-demo): the SwiGLU stories260K, and the relufied stories260K-relu with
// sparsity predictors calibrated the way `npm run demo:sparse` does (same corpus and settings). The
// sparse one is the page's default: it is what the method is for.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "../../..");
export const DEFAULT_CACHE = join(ROOT, ".cache/web-demo");
const MODELS = join(ROOT, "packages/node-io/models");
const CORPUS = join(ROOT, "test/data/tinystories_400k.txt");

/** What the page's model picker shows about each shipped model (served as /models/index.json with sizes). */
export const SHIPPED = {
  "stories260K-relu-pred.flm": {
    title: "stories260K-relu with predictors",
    about: "TinyStories, ReLU: about 9 in 10 feed-forward neurons are zero per token, and predictors choose which to read",
    sparse: true,
  },
  "stories260K.flm": {
    title: "stories260K",
    about: "TinyStories, SwiGLU: every neuron is needed for every token, so each token reads the whole feed-forward part",
    sparse: false,
  },
};

/** Calibration of the sparse model: the settings of scripts/demo-sparse.sh. */
export const CALIBRATION = { positions: 8000, rank: 24, epochs: 10, recall: 0.97 };

async function sdk() {
  const p = join(ROOT, "packages/sdk/dist/internal.js");
  if (!existsSync(p)) throw new Error(`${p} is missing: run "bash scripts/setup.sh" to build the SDK first`);
  return import(pathToFileURL(p).href);
}

/** Converts the shipped llama2.c model to .flm into `cacheDir` unless it is there and newer. Returns its path. */
export async function ensureShippedModel(cacheDir = DEFAULT_CACHE) {
  const bin = join(MODELS, "stories260K/stories260K.bin");
  const tok = join(MODELS, "stories260K/tok512.bin");
  return cached(join(cacheDir, "stories260K.flm"), [bin, tok], async () => {
    const { convertLlama2c, MemorySink } = await sdk();
    const sink = new MemorySink();
    await convertLlama2c(new Uint8Array(readFileSync(bin)), new Uint8Array(readFileSync(tok)), sink);
    return sink.bytes();
  });
}

/**
 * Converts stories260K-relu and calibrates its predictors (about 20-60 s, once; later calls return the
 * cached file). Deterministic: the training is seeded, so every machine builds the same file.
 */
export async function ensureSparseModel(cacheDir = DEFAULT_CACHE, log = (line) => console.error(line)) {
  const bin = join(MODELS, "stories260K-relu/stories260K_relu.bin");
  const tok = join(MODELS, "stories260K-relu/tok512.bin");
  return cached(join(cacheDir, "stories260K-relu-pred.flm"), [bin, tok, CORPUS, fileURLToPath(import.meta.url)], async () => {
    log("[demo] calibrating predictors for stories260K-relu (first use only, about half a minute)…");
    const s = await sdk();
    const conv = new s.MemorySink();
    await s.convertLlama2c(new Uint8Array(readFileSync(bin)), new Uint8Array(readFileSync(tok)), conv, { activation: "relu" });
    let recorder;
    const dense = await s.openFlashModel(new s.MemorySource(conv.bytes()), { selector: "all", contextLength: 256, onActivations: (...a) => recorder.record(...a) });
    try {
      const c = dense.config;
      recorder = new s.ActivationRecorder(c.dim, c.hiddenDim, c.nLayers, CALIBRATION.positions, { kind: "nonzero" });
      await s.recordCorpus(dense, s.corpusSequences(readFileSync(CORPUS, "utf8"), dense.tokenizer, 256), recorder);
      const layers = recorder.layers.map((l) => ({ ...l, n: recorder.positions }));
      const { predictor, quality } = s.trainPredictors(dense.kernels, layers, c.dim, c.hiddenDim, {
        rank: CALIBRATION.rank,
        epochs: CALIBRATION.epochs,
        recallTarget: CALIBRATION.recall,
        recallMargin: 0, // the shipped recipe: threshold at exactly `recall` on the validation split, no lookahead
        lookahead: false,
      });
      const out = new s.MemorySink();
      await s.writeWithPredictor(dense.file, predictor, out, {
        corpus: "tinystories_400k.txt",
        textOffset: 0,
        positions: recorder.positions,
        rule: "relu: h != 0",
        rank: CALIBRATION.rank,
        epochs: CALIBRATION.epochs,
        quality,
      });
      return out.bytes();
    } finally {
      await dense.dispose();
    }
  });
}

/** Every shipped model, made if needed: { name: path }. */
export async function ensureShippedModels(cacheDir = DEFAULT_CACHE) {
  return {
    "stories260K-relu-pred.flm": await ensureSparseModel(cacheDir),
    "stories260K.flm": await ensureShippedModel(cacheDir),
  };
}

// Makes `out` with `make()` unless it exists and is newer than every input. Several processes (vitest runs
// test files in parallel) may ask at once: one makes it under a lock file, the others wait for it.
async function cached(out, inputs, make) {
  const fresh = () => existsSync(out) && inputs.every((i) => statSync(out).mtimeMs >= statSync(i).mtimeMs);
  if (fresh()) return out;
  mkdirSync(dirname(out), { recursive: true });
  const lock = `${out}.lock`;
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      closeSync(openSync(lock, "wx"));
      break;
    } catch {
      // A lock older than 10 minutes belongs to a process that died.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 10 * 60_000) rmSync(lock, { force: true });
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (delete it if no demo server is starting)`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    if (fresh()) return out; // made by another process while we waited
    const bytes = await make();
    const tmp = `${out}.${process.pid}.tmp`; // then rename: a concurrent reader never sees half a file
    writeFileSync(tmp, bytes);
    renameSync(tmp, out);
    return out;
  } finally {
    rmSync(lock, { force: true });
  }
}
