/** `flashllm serve`: an OpenAI-compatible HTTP server for one model. */
export { startServer } from "./server.js";
export type { FlashServer, ServeOptions } from "./server.js";
export type { ServeEvent } from "./turn.js";
export { ApiError } from "./errors.js";
export { GenerationQueue } from "./queue.js";
