import { fileURLToPath } from "node:url";

/** Folder of the models shipped with the package (next to dist/ in the published package). */
export const SHIPPED_MODELS_DIR = fileURLToPath(new URL("../models/", import.meta.url));
/** The default model: karpathy's stories260K (MIT), and its tokenizer. */
export const DEFAULT_MODEL = `${SHIPPED_MODELS_DIR}stories260K/stories260K.bin`;
export const DEFAULT_TOKENIZER = `${SHIPPED_MODELS_DIR}stories260K/tok512.bin`;
