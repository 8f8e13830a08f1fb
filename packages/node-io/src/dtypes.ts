import { FlashError, type Dtype } from "@flashllm/sdk/internal";

/**
 * Container weight types the CLI converts to (`--dtype` of `convert`, `run` and `inspect`), as users
 * type them: f32, q8 (int8 + f32 scale per row), q8_0 and q4 (ggml blocks of 32: Q8_0, Q4_0), f16.
 */
export const CLI_DTYPES = ["f32", "q8", "q8_0", "q4", "f16"] as const;
export type CliDtype = (typeof CLI_DTYPES)[number];

/** The container's name for a CLI type (`q4` is ggml's Q4_0 block layout). */
export function containerDtype(d: CliDtype): Dtype {
  return d === "q4" ? "q4_0" : d;
}

/** `value` as a CLI type, or BAD_ARGUMENT naming the option and the allowed values. */
export function parseCliDtype(value: string, option: string): CliDtype {
  if ((CLI_DTYPES as readonly string[]).includes(value)) return value as CliDtype;
  throw new FlashError("BAD_ARGUMENT", `${option} must be one of ${CLI_DTYPES.join(", ")}, got ${JSON.stringify(value)}`, { value, allowed: [...CLI_DTYPES] });
}
