import { FlashError } from "../errors.js";
import type { GeneratedToken, GenerationStats } from "../language-model.js";

/** Longest stop string accepted, characters (OpenAI's limit is 4 strings; lengths are not bounded there). */
export const MAX_STOP_LENGTH = 256;
/** Stop strings accepted per call. */
export const MAX_STOP_STRINGS = 16;

/** Checks a list of stop strings: at most MAX_STOP_STRINGS non-empty strings of at most MAX_STOP_LENGTH characters. */
export function checkStopStrings(stop: readonly string[]): void {
  if (!Array.isArray(stop)) throw new FlashError("BAD_ARGUMENT", "stop must be an array of strings");
  if (stop.length > MAX_STOP_STRINGS) throw new FlashError("BAD_ARGUMENT", `at most ${MAX_STOP_STRINGS} stop strings, got ${stop.length}`);
  for (const s of stop) {
    if (typeof s !== "string" || s.length === 0 || s.length > MAX_STOP_LENGTH) {
      throw new FlashError("BAD_ARGUMENT", `each stop string must have 1 to ${MAX_STOP_LENGTH} characters, got ${typeof s === "string" ? `${s.length}` : typeof s}`);
    }
  }
}

/**
 * Ends a token stream at the first of `stop` in its text. The text up to the stop string is passed on
 * and the string itself is not; the tokens that spell it end the generation (the inner generator is
 * returned, so the model is free at once). While the text ends with the beginning of a stop string the
 * tokens carrying it are held back, and passed on unchanged as soon as the text goes another way or
 * the stream ends. A token whose text runs into the stop string is passed on with its text cut there.
 * Returns the inner stream's figures, with `finishReason: "stopString"` when a stop string ended it: a
 * generator that is returned early gives no value, so those come from `figuresAfterReturn` (for
 * `LanguageModel.generate`, its `lastStats`).
 */
export async function* stopAtText(
  inner: AsyncGenerator<GeneratedToken, GenerationStats>,
  stop: readonly string[],
  figuresAfterReturn: () => GenerationStats | undefined,
): AsyncGenerator<GeneratedToken, GenerationStats> {
  checkStopStrings(stop);
  const held: GeneratedToken[] = [];
  let heldText = "";
  let done = false;
  try {
    for (;;) {
      const r = await inner.next();
      if (r.done) {
        done = true;
        yield* held;
        return r.value;
      }
      held.push(r.value);
      heldText += r.value.text;
      const at = firstStop(heldText, stop);
      if (at >= 0) {
        // Pass on the text before the stop string, cutting the token it starts in.
        let end = 0;
        for (const t of held) {
          if (end + t.text.length <= at) yield t;
          else if (end < at) yield { ...t, text: t.text.slice(0, at - end) };
          else break;
          end += t.text.length;
        }
        done = true;
        await inner.return(undefined as never);
        const stats = figuresAfterReturn();
        if (!stats) throw new FlashError("BAD_ARGUMENT", "the token stream left no figures after it was returned");
        return { ...stats, finishReason: "stopString" };
      }
      // Hold the tokens that carry a possible start of a stop string; pass on those before it.
      const keepFrom = heldText.length - partialStopSuffix(heldText, stop);
      let end = 0;
      let n = 0;
      while (n < held.length && end + held[n].text.length <= keepFrom) end += held[n++].text.length;
      if (n > 0) {
        const out = held.splice(0, n);
        heldText = heldText.slice(end);
        yield* out;
      }
    }
  } finally {
    // The consumer stopped early, or the inner stream threw: end the generation.
    if (!done) await inner.return(undefined as never).catch(() => undefined);
  }
}

/** Index of the earliest stop string in `text`, or -1. */
export function firstStop(text: string, stop: readonly string[]): number {
  let best = -1;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/** Length of the longest end of `text` that is the beginning of a stop string (0 when none). */
export function partialStopSuffix(text: string, stop: readonly string[]): number {
  let best = 0;
  for (const s of stop) {
    for (let k = Math.min(s.length - 1, text.length); k > best; k--) {
      if (text.endsWith(s.slice(0, k))) {
        best = k;
        break;
      }
    }
  }
  return best;
}
