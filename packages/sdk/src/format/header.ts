import { FormatError } from "../errors.js";
import { FLM_MAGIC, FLM_READ_VERSIONS, HEADER_BYTES, LIMITS } from "./constants.js";

/**
 * The fixed 16-byte header: magic "FLASHLLM", u32 version, u32 manifest byte length (little-endian).
 * The manifest follows at byte 16.
 */

/** Decoded header. */
export interface FlmHeader {
  /** Container version (one of {@link FLM_READ_VERSIONS} once decoded). */
  version: number;
  /** Byte length of the UTF-8 JSON manifest that starts at byte 16. */
  manifestLength: number;
}

/** The 16 header bytes for a manifest of `manifestLength` bytes, of container `version`. */
export function encodeHeader(manifestLength: number, version: number): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  bytes.set(new TextEncoder().encode(FLM_MAGIC), 0);
  const view = new DataView(bytes.buffer);
  view.setUint32(8, version, true);
  view.setUint32(12, manifestLength, true);
  return bytes;
}

/**
 * Decodes and checks the header of a file of `fileSize` bytes. `bytes` holds at least the first
 * min(16, fileSize) bytes. Throws TRUNCATED, BAD_MAGIC, BAD_VERSION or BAD_HEADER.
 */
export function decodeHeader(bytes: Uint8Array, fileSize: number): FlmHeader {
  if (fileSize < HEADER_BYTES || bytes.byteLength < HEADER_BYTES) {
    throw new FormatError("TRUNCATED", `file has ${fileSize} bytes, fewer than the ${HEADER_BYTES}-byte header`, {
      expected: HEADER_BYTES,
      actual: fileSize,
    });
  }
  const magic = String.fromCharCode(...bytes.subarray(0, 8));
  if (magic !== FLM_MAGIC) {
    throw new FormatError("BAD_MAGIC", `not a .flm file: magic is ${JSON.stringify(magic)}, expected ${JSON.stringify(FLM_MAGIC)}`, {
      expected: FLM_MAGIC,
      actual: magic,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  const version = view.getUint32(8, true);
  if (!FLM_READ_VERSIONS.includes(version)) {
    throw new FormatError("BAD_VERSION", `unsupported .flm version ${version}; this reader handles versions ${FLM_READ_VERSIONS.join(", ")}`, {
      expected: FLM_READ_VERSIONS.join(" or "),
      actual: version,
    });
  }
  const manifestLength = view.getUint32(12, true);
  if (manifestLength === 0 || manifestLength > LIMITS.manifestBytes) {
    throw new FormatError("BAD_HEADER", `manifest length ${manifestLength} is outside [1, ${LIMITS.manifestBytes}]`, {
      field: "manifestLength",
      expected: `1..${LIMITS.manifestBytes}`,
      actual: manifestLength,
    });
  }
  if (HEADER_BYTES + manifestLength > fileSize) {
    throw new FormatError("TRUNCATED", `manifest of ${manifestLength} bytes ends at ${HEADER_BYTES + manifestLength}, beyond the end of the ${fileSize}-byte file`, {
      field: "manifestLength",
      expected: `<= ${fileSize - HEADER_BYTES}`,
      actual: manifestLength,
    });
  }
  return { version, manifestLength };
}
