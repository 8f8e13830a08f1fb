import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { ChatTemplate, type FlashModel, type ShardedFlashModel } from "@flashllm/sdk/internal";
import { parseBudget } from "../budget.js";
import { formatBytes } from "../format-stats.js";
import { flmFor } from "../model-files.js";
import { containerDtype, type CliDtype } from "../dtypes.js";
import { startServer, type ServeEvent } from "../serve/index.js";
import { openModelFile } from "../shards/open-model-file.js";
import { parseWorkers } from "../workers.js";

export interface ServeCliOptions {
  tokenizer?: string;
  memoryBudget?: string;
  host: string;
  port: number;
  /** Shards: an integer, or "auto" (default: as `run`). */
  workers?: number | string;
  apiKey?: string;
  modelName?: string;
  context?: number;
  chatTemplate?: string;
  maxQueue: number;
  maxBody: string;
  direct: boolean;
  inFlight: number;
  activation: "silu" | "relu";
  dtype: CliDtype;
}

/**
 * `flashllm serve model.flm|model.bin`: opens the model once and answers OpenAI's API on
 * http://host:port/v1 until interrupted. One line per request on stderr.
 */
export async function serveCommand(modelPath: string, o: ServeCliOptions): Promise<void> {
  const isFlm = modelPath.endsWith(".flm");
  if (!isFlm && !o.tokenizer) throw new Error("a llama2.c checkpoint needs --tokenizer <tok.bin>");
  const log = (m: string) => process.stderr.write(`[flashllm] ${m}\n`);
  const file = isFlm ? modelPath : await flmFor(modelPath, o.tokenizer!, { dtype: containerDtype(o.dtype), activation: o.activation }, log);
  const fileBytes = (await stat(file)).size;
  const memoryBudget = o.memoryBudget ? parseBudget(o.memoryBudget, fileBytes) : undefined;
  const apiKey = o.apiKey ?? process.env.FLASHLLM_API_KEY;
  // openModelFile: one WASM instance here, or `--workers K` shard threads; dispose closes the file.
  const workers = parseWorkers(o.workers, fileBytes, memoryBudget);
  const model = await openModelFile(file, { memoryBudget, contextLength: o.context, workers, direct: o.direct, maxInFlight: o.inFlight });
  try {
    const modelId = o.modelName ?? basename(modelPath).replace(/\.(flm|bin)$/, "");
    await serveModel(model, { modelId, file, fileBytes, memoryBudget, apiKey }, o, log);
  } finally {
    await model.dispose();
  }
}

/** Serves an opened model until SIGINT or SIGTERM. */
async function serveModel(
  model: FlashModel | ShardedFlashModel,
  { modelId, file, fileBytes, memoryBudget, apiKey }: { modelId: string; file: string; fileBytes: number; memoryBudget?: number; apiKey?: string },
  o: ServeCliOptions,
  log: (m: string) => void,
): Promise<void> {
  if (o.chatTemplate) {
    const text = await readFile(o.chatTemplate, "utf8");
    new ChatTemplate(text); // a template that does not parse is refused now, not at the first chat
    model.chatTemplate = text;
  }
  const onEvent = (e: ServeEvent) => {
    if (e.type === "end") log(`${e.id} ${e.status} ${e.finishReason}: ${e.promptTokens} prompt + ${e.generatedTokens} generated tokens`);
    else if (e.type === "rejected") log(`${e.method} ${e.path} ${e.status} ${e.code ?? ""}`);
  };
  const server = await startServer({
    model,
    modelId,
    host: o.host,
    port: o.port,
    apiKey,
    maxQueue: o.maxQueue,
    maxBodyBytes: parseBudget(o.maxBody, 0),
    onEvent,
  });
  const p = model.memoryPlan;
  const capacity = "shards" in p ? p.shards.reduce((n, s) => n + s.capacity, 0) : p.capacity;
  log(
    `${file}: ${formatBytes(fileBytes)}, budget ${memoryBudget ? formatBytes(memoryBudget) : "unlimited"}, context ${model.transformer.contextLength} tokens, ` +
      `neuron cache ${capacity} of ${model.config.hiddenDim * model.config.nLayers} bundles, chat template ${model.chatTemplate ? "yes" : "none"}` +
      ("shards" in p ? `, ${p.shards.length} shards (shard 0 on this thread)` : ""),
  );
  // The URL on stdout, alone on its line, for scripts that start the server on port 0.
  process.stdout.write(`${server.url}/v1\n`);
  log(`serving "${modelId}" on ${server.url}/v1 (OpenAI API${apiKey ? ", API key required" : ""}); Ctrl-C stops`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  log("stopping");
  await server.close();
}
