import type { FlashStats, GenerationStats, LanguageModel } from "@flashllm/sdk";

/**
 * flashllm's own figures for one response, in the extra `flashllm` field of the response (and of the
 * last chunk of a stream): what the flash engine did for this request alone. OpenAI clients ignore it.
 */
export interface ResponseFigures {
  /** Time spent waiting for the model behind other requests, ms. */
  queue_ms: number;
  prompt_ms: number;
  generate_ms: number;
  tokens_per_second: number;
  /** Bytes and read requests the FFN needed from storage. */
  bytes_read: number;
  read_requests: number;
  /** Share of the neurons asked for that were already in the cache (0…1). */
  cache_hit_rate: number;
  /** Time split of the FFN path: waiting for reads, cache bookkeeping, selector + FFN kernel, ms. */
  io_ms: number;
  memory_ms: number;
  compute_ms: number;
}

/** The flash engine's cumulative figures now (undefined for a model that is not read from flash). */
export function flashSnapshot(model: LanguageModel): FlashStats | undefined {
  const flash = (model as { flash?: { stats: FlashStats } }).flash;
  return flash ? { ...flash.stats } : undefined;
}

/** This request's figures: the difference between two snapshots, and the generation's timings. */
export function responseFigures(queueMs: number, stats: GenerationStats | undefined, before: FlashStats | undefined, after: FlashStats | undefined): ResponseFigures {
  const d = (k: keyof FlashStats) => (before && after ? after[k] - before[k] : 0);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const active = d("activeNeurons");
  return {
    queue_ms: round(queueMs),
    prompt_ms: round(stats?.promptMs ?? 0),
    generate_ms: round(stats?.generateMs ?? 0),
    tokens_per_second: round(stats?.tokensPerSecond ?? 0),
    bytes_read: d("bytesRead"),
    read_requests: d("readRequests"),
    cache_hit_rate: active > 0 ? round(d("cacheHits") / active) : 0,
    io_ms: round(d("ioMs")),
    memory_ms: round(d("memoryMs")),
    compute_ms: round(d("computeMs")),
  };
}
