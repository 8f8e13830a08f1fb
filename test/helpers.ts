import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { mulberry32 } from "../packages/sdk/src/testing/index.js";

/** Repository root. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The shipped default model. */
export const STORIES_BIN = `${ROOT}packages/node-io/models/stories260K/stories260K.bin`;
export const STORIES_TOK = `${ROOT}packages/node-io/models/stories260K/tok512.bin`;
/** Reference outputs of karpathy's run.c, copied from shared/models/stories260K/reference. */
export const STORIES_REF = `${ROOT}test/data/stories260K`;
/** The machine-local model collection; absent on a user's clone, so tests that need it skip. */
export const SHARED_MODELS = `${ROOT}../shared/models`;
export const hasShared = existsSync(SHARED_MODELS);

export function readBytes(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export function readJson<T = any>(path: string): T {
  return JSON.parse(readFileSync(path, "utf8")) as T;
}

/** Reads a raw little-endian float32 file. */
export function readF32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** A small seeded PRNG for test inputs (mulberry32): fresh data each seed, reproducible on failure. */
export const rng: (seed: number) => () => number = mulberry32;
