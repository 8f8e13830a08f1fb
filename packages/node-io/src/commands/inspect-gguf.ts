import {
  FlmWriter, Kernels, convertDeclaration, ggufModel, keepDtype, openGguf, planMemory,
  type FfnStorageLayout, type FlashError, type GgufFile, type Manifest,
} from "@flashllm/sdk/internal";
import { parseBudget } from "../budget.js";
import { containerDtype, type CliDtype } from "../dtypes.js";
import { formatBytes } from "../format-stats.js";
import type { NodeFileSource } from "../source/index.js";

/** Options of {@link inspectGguf}. */
export interface InspectGgufOptions {
  json: boolean;
  memoryBudget?: string;
  dtype: "keep" | CliDtype;
}

/** A sink that keeps nothing: planning a file's layout writes no bytes. */
const nowhere = { write: async () => {} };

/**
 * `flashllm inspect model.gguf`: what the file holds (architecture, dimensions, tensor types, tokenizer,
 * chat template, PowerInfer predictors) and whether flashllm can run it, with the `.flm` it would
 * convert to and the memory a budget leaves for the neuron cache: all from the header, no tensor read.
 */
export async function inspectGguf(path: string, source: NodeFileSource, o: InspectGgufOptions): Promise<void> {
  const file = await openGguf(source);
  const report: Record<string, unknown> = {
    path,
    bytes: source.byteLength,
    ggufVersion: file.version,
    alignment: file.alignment,
    architecture: file.get("general.architecture"),
    name: file.get("general.name"),
    tensors: file.tensors.length,
    metadataKeys: file.metadata.size,
    tensorTypes: typeSummary(file),
  };
  const predictorLayers = file.tensors.filter((t) => /^blk\.\d+\.fc1\.weight$/.test(t.name)).length;
  if (predictorLayers > 0) report.powerInferPredictors = { layers: predictorLayers, threshold: file.get("powerinfer.sparse_threshold"), powerinferMagic: file.powerinfer };
  const lines: string[] = [
    `${path}: GGUF v${file.version}, ${formatBytes(source.byteLength)}, ${file.tensors.length} tensors, ${file.metadata.size} metadata keys`,
    `architecture ${String(report.architecture)}${report.name ? ` (${String(report.name)})` : ""}`,
    `tensor types: ${Object.entries(report.tensorTypes as Record<string, { count: number; bytes: number }>).map(([t, s]) => `${t} ×${s.count} (${formatBytes(s.bytes)})`).join(", ")}`,
  ];
  try {
    const model = ggufModel(file);
    const c = model.config;
    const dtype = o.dtype === "keep" ? keepDtype(model) : containerDtype(o.dtype);
    const decl = convertDeclaration(model.tensors, model.tokenizer.file, { dtype });
    const manifest = new FlmWriter(nowhere, decl).plan.manifest;
    const plan = planFor(manifest, o.memoryBudget, new FlmWriter(nowhere, decl).fileSize, (await Kernels.load()).memoryBytes);
    const flash = manifest.ffn.bundleStride * c.hiddenDim * c.nLayers;
    if (model.predictors) report.powerInferPredictors = { ...(report.powerInferPredictors as object), imported: true, ranks: model.predictors.ranks, sparseThreshold: model.predictors.sparseThreshold };
    Object.assign(report, {
      runnable: true,
      config: c,
      tokenizer: { model: file.get("tokenizer.ggml.model"), kind: model.tokenizer.file.kind, vocab: c.vocabSize, bos: model.tokenizer.bos, eos: model.tokenizer.eos, notes: model.tokenizer.notes },
      chatTemplate: model.chatTemplate !== undefined,
      flm: { dtype, fileBytes: new FlmWriter(nowhere, decl).fileSize, flashBytes: flash },
      memory: plan,
    });
    lines.push(
      `model: dim ${c.dim}, FFN ${c.hiddenDim} neurons × ${c.nLayers} layers, ${c.nHeads} heads (${c.nKvHeads} KV), vocab ${c.vocabSize}, context ${c.seqLen}, rope θ ${c.ropeTheta}, rms eps ${+c.normEps.toPrecision(6)}`,
      `activation: ${activationLine(c, model.predictors !== undefined)}`,
      `tokenizer: ${String(file.get("tokenizer.ggml.model"))} → ${model.tokenizer.file.kind}, BOS ${model.tokenizer.bos ?? "-"}, EOS ${model.tokenizer.eos ?? "-"}${model.tokenizer.notes.length ? `; note: ${model.tokenizer.notes.join("; ")}` : ""}`,
      `chat template: ${model.chatTemplate !== undefined ? `yes (${model.chatTemplate.length} characters)` : "none"}`,
      `predictors: ${model.predictors ? `PowerInfer fc1/fc2 in ${model.predictors.ranks.length} layers (rank ${rankText(model.predictors.ranks)}, threshold ${model.predictors.sparseThreshold}${file.get("powerinfer.sparse_threshold") !== undefined ? "" : " by default"}, on the residual stream): imported by convert, so the .flm runs sparse without calibrating` : "none (run `flashllm calibrate` after converting)"}`,
      `flashllm can run it: yes. As .flm (${dtype}): ${formatBytes((report.flm as { fileBytes: number }).fileBytes)}, of which ${formatBytes(flash)} FFN bundles on storage and ${formatBytes(plan.residentBytes)} resident`,
      plan.line,
    );
  } catch (e) {
    const err = e as FlashError;
    report.runnable = false;
    report.reason = `${err.code ?? "ERROR"}: ${err.message}`;
    lines.push(`flashllm can run it: no. ${report.reason as string}`);
  }
  process.stdout.write(o.json ? JSON.stringify(report, (_, v) => (typeof v === "bigint" ? String(v) : v), 2) + "\n" : lines.join("\n") + "\n");
}

/** The activation and what it means for sparsity. */
function activationLine(c: { activation: string; activationThreshold?: number }, withPredictors: boolean): string {
  switch (c.activation) {
    case "silu": return "silu (SwiGLU: llama GGUFs do not record the activation; expect little sparsity unless the model is relufied)";
    case "drelu": return "drelu (ReLU on gate and up: architecture bamboo; sparse, selection exact where gate or up decides)";
    case "relu": return `relu${withPredictors ? " (PowerInfer's sparse graph runs llama files with predictors through ReLU)" : ""}`;
    default: return c.activation;
  }
}

function rankText(ranks: number[]): string {
  const lo = Math.min(...ranks), hi = Math.max(...ranks);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

function typeSummary(file: GgufFile): Record<string, { count: number; bytes: number }> {
  const out: Record<string, { count: number; bytes: number }> = {};
  for (const t of file.tensors) {
    const s = (out[t.typeName] ??= { count: 0, bytes: 0 });
    s.count++;
    s.bytes += t.byteLength;
  }
  return out;
}

/** The memory plan of the converted file at a context of min(seqLen, 2048) positions, windowed strategy. */
function planFor(m: Manifest, budgetText: string | undefined, fileBytes: number, moduleBytes: number) {
  const c = m.config;
  const layout: FfnStorageLayout = {
    dim: c.dim, neurons: c.hiddenDim, nLayers: c.nLayers, bundleBytes: m.ffn.bundleBytes, bundleStride: m.ffn.bundleStride,
    dtype: m.ffn.dtype, gated: m.ffn.gated, activation: c.activation, layerOffsets: new Array<number>(c.nLayers).fill(0),
  };
  const context = Math.min(c.seqLen, 2048);
  const base = planMemory(m, layout, "windowed", context, moduleBytes);
  let minimum = 0;
  try {
    planMemory(m, layout, "windowed", context, moduleBytes, 0);
  } catch (e) {
    minimum = Number((e as FlashError).details.minimum); // the planner's own figure for one cache slot
  }
  const all = base.totalBytes;
  const result = { residentBytes: base.residentBytes, stateBytes: base.stateBytes, contextLength: context, minimumBudget: minimum, budgetForEveryNeuron: all, line: "" };
  let line = `memory (context ${context}): at least ${formatBytes(minimum)} (resident ${formatBytes(base.residentBytes)}, KV cache and activations ${formatBytes(base.stateBytes)}); ${formatBytes(all)} caches every neuron`;
  if (budgetText !== undefined) {
    const budget = parseBudget(budgetText, fileBytes);
    try {
      const p = planMemory(m, layout, "windowed", context, moduleBytes, budget);
      line += `\nwith a budget of ${formatBytes(budget)}: neuron cache of ${p.capacity} bundles (${((100 * p.capacity) / (c.hiddenDim * c.nLayers)).toFixed(1)}% of all neurons)`;
      Object.assign(result, { budget, cacheSlots: p.capacity });
    } catch (e) {
      line += `\nwith a budget of ${formatBytes(budget)}: too small (${(e as Error).message})`;
      Object.assign(result, { budget, cacheSlots: 0 });
    }
  }
  result.line = line;
  return result;
}

