import { FlashError, FormatError } from "../errors.js";
import type { FlashSource } from "../source.js";
import { openSafetensors } from "./safetensors.js";
import type { OpenSafetensorsOptions, ReadTensorOptions, SafetensorsFile, TensorReader } from "./safetensors.js";
import type { TensorInfo } from "./safetensors-header.js";

/**
 * Sharded checkpoints: `model.safetensors.index.json` maps each tensor name to the shard file that
 * holds it (`{"metadata": {...}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors", ...}}`).
 * The result reads like one file.
 */

/** Opens the source of one shard by its file name (relative to the index, as written in `weight_map`). */
export type OpenShard = (fileName: string) => Promise<FlashSource>;

/** A sharded checkpoint: the {@link TensorReader} API over all shards. */
export interface ShardedSafetensors extends TensorReader {
  /** The opened shards in order of first appearance in `weight_map`. */
  readonly shards: readonly SafetensorsFile[];
}

/**
 * Parses the index JSON text, opens each distinct shard once through `openShard` (reading only its
 * header) and checks that every mapped tensor is in its shard. Throws FormatError BAD_MANIFEST for a
 * malformed index (not JSON, no `weight_map`, non-string or path-like shard names, a tensor missing
 * from its shard), plus whatever {@link openSafetensors} throws for a shard. Shards already opened
 * are closed when a later one fails.
 */
export async function openShardedSafetensors(
  indexJson: string,
  openShard: OpenShard,
  options: Omit<OpenSafetensorsOptions, "name"> = {},
): Promise<ShardedSafetensors> {
  const INDEX = "model.safetensors.index.json";
  const bad = (what: string, details: Record<string, unknown> = {}): never => {
    throw new FormatError("BAD_MANIFEST", `${INDEX}: ${what}`, { file: INDEX, ...details });
  };
  let json: unknown;
  try {
    json = JSON.parse(indexJson);
  } catch (e) {
    bad(`not valid JSON (${(e as Error).message})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) bad("weight_map is missing or not an object");
  const weightMap = map as Record<string, unknown>;
  const files: string[] = [];
  for (const [tensor, file] of Object.entries(weightMap)) {
    if (typeof file !== "string" || file === "") bad(`weight_map["${tensor}"] is not a file name`, { tensor });
    // Shards sit next to the index; refusing paths keeps a hostile index from pointing anywhere else.
    if (/(^|[\\/])\.\.([\\/]|$)|^[\\/]|^[A-Za-z]:/.test(file as string)) bad(`weight_map["${tensor}"] = "${String(file)}" is not a plain relative file name`, { tensor });
    if (!files.includes(file as string)) files.push(file as string);
  }
  if (files.length === 0) bad("weight_map is empty");

  const shards: SafetensorsFile[] = [];
  try {
    for (const file of files) shards.push(await openSafetensors(await openShard(file), { ...options, name: file }));
    const byFile = new Map(shards.map((s) => [s.name, s]));
    const byTensor = new Map<string, SafetensorsFile>();
    for (const [tensor, file] of Object.entries(weightMap)) {
      const shard = byFile.get(file as string)!;
      if (!shard.has(tensor)) bad(`tensor "${tensor}" is mapped to ${String(file)}, which does not contain it`, { tensor, shard: file });
      byTensor.set(tensor, shard);
    }
    return new Sharded(shards, byTensor);
  } catch (e) {
    await Promise.allSettled(shards.map((s) => s.close()));
    throw e;
  }
}

class Sharded implements ShardedSafetensors {
  constructor(
    readonly shards: readonly SafetensorsFile[],
    private readonly byTensor: Map<string, SafetensorsFile>,
  ) {}
  names(): string[] {
    // Shard order, then each shard's file order: the order a converter streams them in with the fewest seeks.
    return this.shards.flatMap((s) => s.names().filter((n) => this.byTensor.get(n) === s));
  }
  has(name: string): boolean {
    return this.byTensor.has(name);
  }
  info(name: string): TensorInfo | undefined {
    return this.byTensor.get(name)?.info(name);
  }
  readTensor(name: string, options?: ReadTensorOptions): Promise<Float32Array> {
    const shard = this.byTensor.get(name);
    if (!shard) return Promise.reject(new FlashError("BAD_ARGUMENT", `sharded checkpoint: no tensor named "${name}"`, { tensor: name }));
    return shard.readTensor(name, options);
  }
  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}
