import { createHash, timingSafeEqual } from "node:crypto";
import { ApiError } from "./errors.js";

/**
 * Checks `Authorization: Bearer <key>` against the server's key in constant time: both sides are
 * hashed to 32 bytes first, so neither the comparison nor the lengths tell an attacker how much of a
 * guess was right.
 */
export function checkApiKey(header: string | undefined, key: string): void {
  const given = /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim();
  if (given === undefined) {
    throw new ApiError(401, "missing API key: send the header Authorization: Bearer <key> (the key given to flashllm serve --api-key)", "invalid_request_error", "invalid_api_key");
  }
  const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();
  if (!timingSafeEqual(digest(given), digest(key))) throw new ApiError(401, "incorrect API key provided", "invalid_request_error", "invalid_api_key");
}
