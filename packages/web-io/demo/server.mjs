#!/usr/bin/env node
// The demo's web server: the page, the bundles in dist/, and models with HTTP Range support.
// No dependencies. Also the browser tests' server: under /test/<mode>/ the same models are served
// the way misbehaving servers do (see MODES), so a test can check each clear error.
//
// Every response carries COOP/COEP, so the page is cross-origin isolated (SharedArrayBuffer, which the
// sharded engine's workers synchronise through); `--coep none` serves the page without them.
//
//   node packages/web-io/demo/server.mjs [--port 8080] [--host 127.0.0.1] [--model FILE.flm]...
//                                        [--no-range] [--truncate BYTES] [--cache DIR] [--coep credentialless|require-corp|none]
import { createServer } from "node:http";
import { createReadStream, existsSync, statSync } from "node:fs";
import { basename, dirname, extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { SHIPPED, ensureShippedModel, ensureShippedModels, ensureSparseModel } from "./models.mjs";

export { ensureShippedModel, ensureShippedModels, ensureSparseModel };

const here = dirname(fileURLToPath(import.meta.url));
const webIo = resolve(here, "..");

/**
 * Ways of serving a model under /test/<mode>/<name>:
 * - range:     like /models/ (Range, ETag): a baseline for tests
 * - no-range:  ignores Range and answers 200 with the whole file, as some static hosts do
 * - truncated: the file cut to half its size (Range still works): a partial upload or download
 * - flaky:     the first request for each byte range fails with 503, the retry succeeds
 * - cut:       the first request for each byte range sends half its bytes, then drops the connection
 * - changing:  after two requests the ETag changes, as if the file were replaced on the server
 * - slow:      every response waits `slowMs` first, and again after each 64 KiB of body (so a test can
 *              abort mid-generation or mid-import); `?slowMs=N` overrides the delay
 * - no-cors:   like range, without Access-Control-Allow-Origin: a page of another origin may not read it
 * - bad-tail:  like range, but a read reaching byte `?from=N` or beyond fails with 410 Gone (a server
 *              that lost part of the file): only a reader of those bytes fails, e.g. one shard worker
 */
export const MODES = ["range", "no-range", "truncated", "flaky", "cut", "changing", "slow", "no-cors", "bad-tail"];

/** Values of Cross-Origin-Embedder-Policy the server can send ("none": neither COOP nor COEP). */
export const COEP = ["credentialless", "require-corp", "none"];

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json",
  ".png": "image/png",
  ".flm": "application/octet-stream",
};

/**
 * Starts the server. Options: port (0 = any), host, models ({ name: path }, default the shipped models:
 * see models.mjs), noRange / truncate (apply to /models/ as well, for trying the page against a bad server),
 * slowMs (default 40), cacheDir, coep (default "credentialless": isolation without asking other origins
 * for CORP headers; "require-corp" for Safari; "none" to see the page fall back). Resolves to
 * { url, port, models, log, close() }; `log` lists every model request: { path, mode, range, status, sent, complete }.
 */
export async function startDemoServer(options = {}) {
  const models = { ...(options.models ?? (await ensureShippedModels(options.cacheDir))) };
  const coep = options.coep ?? "credentialless";
  if (!COEP.includes(coep)) throw new Error(`coep must be one of ${COEP.join(", ")}, got ${coep}`);
  const slowMs = options.slowMs ?? 40;
  const log = [];
  const seen = new Set(); // flaky/cut: byte ranges already failed once
  const changingCount = new Map();

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = decodeURIComponent(url.pathname);
    if (coep !== "none") {
      res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
      res.setHeader("Cross-Origin-Embedder-Policy", coep);
    }
    // Models may be read by isolated pages of other origins too.
    res.setHeader("Cross-Origin-Resource-Policy", "cross-origin");
    if (!path.startsWith("/test/no-cors/")) res.setHeader("Access-Control-Allow-Origin", "*");
    res.setHeader("Access-Control-Expose-Headers", "Content-Range, Content-Length, ETag, Accept-Ranges, Last-Modified");
    if (req.method === "OPTIONS") {
      res.setHeader("Access-Control-Allow-Headers", "Range, If-Match, If-Range");
      return end(res, 204);
    }
    if (req.method !== "GET" && req.method !== "HEAD") return end(res, 405, "only GET and HEAD");
    let m;
    if (path === "/models/index.json") return serveIndex(req, res);
    if ((m = /^\/models\/([^/]+)$/.exec(path))) {
      const mode = options.noRange ? "no-range" : "range";
      return serveModel(req, res, models[m[1]], { mode, truncate: options.truncate, path });
    }
    if ((m = /^\/test\/([a-z-]+)\/([^/]+)$/.exec(path)) && MODES.includes(m[1])) {
      const delay = Number(url.searchParams.get("slowMs") ?? slowMs);
      const badFrom = Number(url.searchParams.get("from") ?? Infinity);
      return serveModel(req, res, models[m[2]], { mode: m[1], path, delay, badFrom });
    }
    if (path === "/" || path === "/index.html") return serveStatic(req, res, join(here, "index.html"));
    if (path === "/demo.css") return serveStatic(req, res, join(here, "demo.css"));
    if (path.startsWith("/dist/")) return serveStatic(req, res, inside(join(webIo, "dist"), path.slice(6)));
    // The bundles without the shard worker (a deployment that forgot it): shard workers fail to start.
    if (path.startsWith("/test/no-shard-worker/dist/")) {
      const file = path.slice("/test/no-shard-worker/dist/".length);
      return file.startsWith("shard-worker.js") ? end(res, 404, "not found") : serveStatic(req, res, inside(join(webIo, "dist"), file));
    }
    if (path === "/favicon.ico") return end(res, 204);
    return end(res, 404, "not found");
  });

  // The page's model picker: every model served under /models/, with its size.
  function serveIndex(req, res) {
    const list = Object.entries(models).map(([name, file]) => ({
      name,
      bytes: statSync(file).size,
      title: SHIPPED[name]?.title ?? name,
      about: SHIPPED[name]?.about ?? "",
      sparse: SHIPPED[name]?.sparse ?? false,
    }));
    const body = JSON.stringify(list);
    res.setHeader("Content-Type", "application/json");
    res.setHeader("Cache-Control", "no-cache");
    res.setHeader("Content-Length", Buffer.byteLength(body));
    res.end(req.method === "HEAD" ? undefined : body);
  }

  function serveModel(req, res, file, { mode, truncate, path, delay = slowMs, badFrom = Infinity }) {
    if (!file) return end(res, 404, "no such model");
    const st = statSync(file);
    const size = mode === "truncated" ? Math.floor(st.size / 2) : Math.min(st.size, truncate ?? Infinity);
    let etag = `"${size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    if (mode === "changing") {
      const n = (changingCount.get(path) ?? 0) + 1;
      changingCount.set(path, n);
      if (n > 2) etag = `"${size.toString(16)}-replaced"`;
    }
    const rangeHeader = req.headers.range;
    const entry = { path, mode, range: rangeHeader ?? null, status: 0, sent: 0, complete: false };
    log.push(entry);
    const key = `${path} ${rangeHeader}`;
    const firstTry = !seen.has(key);
    seen.add(key);

    const respond = () => {
      res.setHeader("Content-Type", TYPES[".flm"]);
      res.setHeader("ETag", etag);
      res.setHeader("Last-Modified", st.mtime.toUTCString());
      // Tests count on every request reaching the server; a real deployment may allow caching.
      res.setHeader("Cache-Control", "no-store");
      if (mode === "flaky" && firstTry && rangeHeader) return finish(end(res, 503, "try again"));
      if (req.headers["if-match"] && req.headers["if-match"] !== etag) return finish(end(res, 412, "changed"));
      let start = 0;
      let stop = size; // exclusive
      let status = 200;
      if (mode !== "no-range") {
        res.setHeader("Accept-Ranges", "bytes");
        const r = rangeHeader ? parseRange(rangeHeader, size) : undefined;
        if (r === null) {
          res.setHeader("Content-Range", `bytes */${size}`);
          return finish(end(res, 416, "range not satisfiable"));
        }
        if (r && mode === "bad-tail" && r[1] > badFrom) return finish(end(res, 410, "this part of the file is gone"));
        if (r) {
          [start, stop] = r;
          status = 206;
          res.setHeader("Content-Range", `bytes ${start}-${stop - 1}/${size}`);
        }
      }
      res.statusCode = status;
      res.setHeader("Content-Length", stop - start);
      entry.status = status;
      if (req.method === "HEAD" || stop === start) return finish(res.end());
      const cut = mode === "cut" && firstTry && status === 206 ? start + Math.floor((stop - start) / 2) : stop;
      const stream = createReadStream(file, { start, end: cut - 1, highWaterMark: 64 * 1024 });
      // A pump of our own rather than pipe(): the slow mode paces the body, and pipe() would resume it.
      stream.on("data", (chunk) => {
        entry.sent += chunk.length;
        const drained = res.write(chunk);
        if (drained && mode !== "slow") return;
        stream.pause();
        const go = () => (mode === "slow" ? setTimeout(() => stream.resume(), delay) : stream.resume());
        if (drained) go();
        else res.once("drain", go);
      });
      stream.on("end", () => (cut < stop ? res.destroy() : res.end()));
      stream.on("error", () => res.destroy());
      res.on("close", () => {
        entry.complete = res.writableFinished;
        stream.destroy();
      });
    };
    const finish = () => {
      entry.status ||= res.statusCode;
      entry.complete = true;
    };
    if (mode === "slow") setTimeout(respond, delay);
    else respond();
  }

  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(options.port ?? 8080, options.host ?? "127.0.0.1", ok);
  });
  const addr = server.address();
  const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/`,
    port: addr.port,
    models,
    log,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections?.();
        server.close(() => ok());
      }),
  };
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` → [start, end) ; null = unsatisfiable ; undefined = not one plain range (serve it all). */
function parseRange(h, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(h.trim());
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  let start, stop;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    stop = size;
  } else {
    start = Number(m[1]);
    stop = m[2] === "" ? size : Math.min(size, Number(m[2]) + 1);
  }
  if (start >= size || stop <= start) return null;
  return [start, stop];
}

function serveStatic(req, res, file) {
  if (!file || !existsSync(file) || !statSync(file).isFile()) {
    return end(res, 404, file?.includes(`${sep}dist${sep}`) ? "not built: run bash scripts/setup.sh" : "not found");
  }
  res.setHeader("Content-Type", TYPES[extname(file)] ?? "application/octet-stream");
  res.setHeader("Cache-Control", "no-cache");
  res.setHeader("Content-Length", statSync(file).size);
  if (req.method === "HEAD") return res.end();
  createReadStream(file).pipe(res);
}

function inside(dir, rel) {
  const p = normalize(join(dir, rel));
  return p.startsWith(dir + sep) ? p : undefined;
}

function end(res, status, text = "") {
  res.statusCode = status;
  if (text) res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(text);
  return res;
}

function parseArgs(argv) {
  const o = { models: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === "--port") o.port = Number(next());
    else if (a === "--host") o.host = next();
    else if (a === "--no-range") o.noRange = true;
    else if (a === "--truncate") o.truncate = Number(next());
    else if (a === "--cache") o.cacheDir = resolve(next());
    else if (a === "--coep") o.coep = next();
    else if (a === "--model") {
      const f = resolve(next());
      o.models = { ...(o.models ?? {}), [basename(f)]: f };
    } else if (a === "--help" || a === "-h") {
      console.log("usage: server.mjs [--port 8080] [--host 127.0.0.1] [--model FILE.flm]... [--no-range] [--truncate BYTES] [--cache DIR] [--coep credentialless|require-corp|none]");
      process.exit(0);
    } else throw new Error(`unknown option ${a} (try --help)`);
  }
  return o;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const opts = parseArgs(process.argv.slice(2));
    if (opts.models) opts.models = { ...(await ensureShippedModels(opts.cacheDir)), ...opts.models };
    const s = await startDemoServer(opts);
    console.log(`flashllm demo: ${s.url}`);
    for (const name of Object.keys(s.models)) console.log(`  model: ${s.url}models/${name}`);
    if (opts.noRange) console.log("  (--no-range: models are served without Range support)");
    if (opts.truncate !== undefined) console.log(`  (--truncate: models are cut to ${opts.truncate} bytes)`);
    if (opts.coep === "none") console.log("  (--coep none: the page is not cross-origin isolated)");
  } catch (e) {
    console.error(`demo server: ${e.message}`);
    process.exit(1);
  }
}
