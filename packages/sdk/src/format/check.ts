import { FormatError } from "../errors.js";
import type { FlashErrorCode } from "../errors.js";
import { LIMITS } from "./constants.js";

/**
 * Field checkers for manifest validation. Each takes the value and its path ("config.dim",
 * "sections[3].offset") and throws a FormatError naming the field, what was expected and what was
 * found. Wrong JSON types are always BAD_MANIFEST; a caller picks the code for out-of-range values
 * (WRONG_DIMS for model dimensions).
 */

/** Short printable form of a manifest value for error messages. */
export function describe(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  if (v === undefined) return "nothing (missing)";
  const s = typeof v === "string" ? JSON.stringify(v) : String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Throws the FormatError for `field`. */
export function fail(code: FlashErrorCode, field: string, expected: string, actual: unknown, extra: Record<string, unknown> = {}): never {
  throw new FormatError(code, `manifest field ${field}: expected ${expected}, got ${describe(actual)}`, {
    field,
    expected,
    actual: typeof actual === "object" && actual !== null ? describe(actual) : actual,
    ...extra,
  });
}

/** A JSON object (not null, not an array). */
export function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail("BAD_MANIFEST", field, "an object", v);
  return v as Record<string, unknown>;
}

/** A JSON array with at most `max` entries. */
export function arr(v: unknown, field: string, max: number): unknown[] {
  if (!Array.isArray(v)) fail("BAD_MANIFEST", field, "an array", v);
  if (v.length > max) fail("BAD_MANIFEST", field, `at most ${max} entries`, v);
  return v;
}

/** A safe integer in [min, max]; `rangeCode` is the error code when it is an integer but out of range. */
export function int(v: unknown, field: string, min: number, max: number, rangeCode: FlashErrorCode = "BAD_MANIFEST"): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) fail("BAD_MANIFEST", field, "a safe integer", v);
  if (v < min || v > max) fail(rangeCode, field, `an integer in [${min}, ${max}]`, v);
  return v;
}

/** A finite number with min < v < max (exclusive bounds). */
export function num(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isFinite(v)) fail("BAD_MANIFEST", field, "a finite number", v);
  if (!(v > min && v < max)) fail("BAD_MANIFEST", field, `a number in (${min}, ${max})`, v);
  return v;
}

/** A boolean. */
export function bool(v: unknown, field: string): boolean {
  if (typeof v !== "boolean") fail("BAD_MANIFEST", field, "true or false", v);
  return v;
}

/** One of `allowed`. An unknown string is UNSUPPORTED (perhaps a newer writer); anything else BAD_MANIFEST. */
export function oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[]): T {
  const expected = allowed.map((a) => JSON.stringify(a)).join(" | ");
  if (typeof v !== "string") fail("BAD_MANIFEST", field, expected, v);
  if (!(allowed as readonly string[]).includes(v)) fail("UNSUPPORTED", field, expected, v);
  return v as T;
}

/** A non-empty string of at most LIMITS.nameLength characters without control characters. */
export function name(v: unknown, field: string): string {
  if (typeof v !== "string" || v.length === 0 || v.length > LIMITS.nameLength || /[\u0000-\u001f\u007f]/.test(v)) {
    fail("BAD_MANIFEST", field, `a name of 1 to ${LIMITS.nameLength} printable characters`, v);
  }
  return v;
}
