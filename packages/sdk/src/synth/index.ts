/** Synthetic models: exact shapes of published models with random q8 weights, for benchmarks at scale. */
export { SYNTH_SHAPES, synthShape } from "./shapes.js";
export type { SynthShape, ShapeOverrides } from "./shapes.js";
export { synthesizeFlm, syntheticTokenizer } from "./synthesize.js";
export type { SynthOptions } from "./synthesize.js";
export { XorShift32 } from "./random.js";
export { synthesizeGguf } from "./synthesize-gguf.js";
