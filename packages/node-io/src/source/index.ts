// Public surface of the Node storage reader; packages/node-io/src/index.ts should re-export this.
export { NodeFileSource } from "./node-file-source.js";
export type { NodeFileSourceOptions, NodeFileSourceStats } from "./node-file-source.js";
export { ThreadedFileSource } from "./threaded-file-source.js";
export type { ThreadedFileSourceOptions } from "./threaded-file-source.js";
