// Errors in words a user understands; the technical message stays one click away (see demo.ts).
import { FlashError } from "@flashllm/sdk";
import { formatBytes } from "../src/util.js";

/** A mistake in the form, explained as is. */
export class UserError extends Error {}

export function explain(e: unknown): string {
  if (e instanceof UserError) return e.message;
  if (!(e instanceof FlashError)) {
    const m = (e as Error)?.message ?? String(e);
    if (/worker/.test(m)) return `The engine stopped (${m}). It has been restarted: try again.`;
    return `Something went wrong: ${m}`;
  }
  const d = e.details as Record<string, number>;
  switch (e.code as string) {
    case "ABORTED":
      return "Stopped.";
    case "BUDGET_TOO_SMALL":
      return `The memory budget of ${formatBytes(d.budget)} is too small for this model: it needs at least ${formatBytes(d.minimum)}. Raise the budget, or shorten the context length.`;
    case "TRUNCATED":
      return "The model file is incomplete: it is shorter than its own table of contents says. Download or copy it again.";
    case "CHECKSUM_MISMATCH":
      return "The model file is damaged: its contents do not match their checksums. Download or copy it again.";
    case "BAD_MAGIC":
      return "This is not a flashllm model (.flm) file. Convert a model with “flashllm convert” first.";
    case "BAD_VERSION":
    case "BAD_HEADER":
    case "BAD_MANIFEST":
      return `This model file cannot be read by this version of flashllm (${e.message}).`;
    case "QUOTA_EXCEEDED":
      return `${e.message.replace(/^not enough/, "Not enough")} (see “Models kept in this browser” below).`;
    case "CONTEXT_OVERFLOW":
      return `The prompt is longer than the context holds (${d.contextLength} tokens). Shorten it or raise the context length.`;
    case "OUT_OF_MEMORY":
      return "The browser could not give the model more memory. Lower the memory budget or close other tabs.";
    case "READ_FAILED":
      if (/was not found on the server \(HTTP 404\)|: HTTP 404\b/.test(e.message)) return `There is no model at that address (the server answered 404 Not Found). Check the address.`;
      return `The model could not be read: ${e.message}.`.replace(/\.\.$/, ".");
    default:
      return e.message;
  }
}
