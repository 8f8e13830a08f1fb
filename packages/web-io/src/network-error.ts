/**
 * Turns a bare network failure of `fetch` ("Failed to fetch", a TypeError that says nothing) into words:
 * a cross-origin server that does not allow this page to read it (CORS), or a host that cannot be reached.
 * Browsers hide the difference on purpose, but a `no-cors` request tells them apart: it succeeds (with an
 * opaque answer) whenever the server answered at all.
 */

/** Why a fetch failed without an HTTP answer. */
export type NetworkFailure = "cors" | "unreachable";

/**
 * For a `fetch` of `url` that threw: "cors" if the server answers a `no-cors` HEAD (so it is up, but
 * does not send `Access-Control-Allow-Origin` to this origin), else "unreachable". Same-origin URLs are
 * never "cors". Nothing is downloaded.
 */
export async function diagnoseNetworkFailure(url: string, fetchFn: typeof fetch, signal?: AbortSignal): Promise<NetworkFailure> {
  const origin = globalThis.location?.origin;
  if (!origin || new URL(url).origin === origin) return "unreachable";
  try {
    await fetchFn(url, { method: "HEAD", mode: "no-cors", cache: "no-store", credentials: "omit", signal });
    return "cors";
  } catch {
    return "unreachable";
  }
}

/** A sentence for people, naming the host and what to do. */
export function describeNetworkFailure(kind: NetworkFailure, url: string, detail: string): string {
  const u = new URL(url);
  if (kind === "cors") {
    return (
      `${u.host} answered, but does not allow pages from ${globalThis.location?.origin ?? "this site"} to read ${u.pathname} ` +
      `(a cross-origin request blocked by CORS): the server must send "Access-Control-Allow-Origin" and ` +
      `"Access-Control-Expose-Headers: Content-Range, ETag", or the model must be served from this page's own site`
    );
  }
  return `cannot reach ${u.host}: the address is wrong, the server is not running, or the network is down (${detail})`;
}
